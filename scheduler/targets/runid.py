"""Run ids as job ids, for targets that forbid some of their characters (DESIGN "Where runs go").

A run id is `<schedule>@<fire time>` (`nightly@2026-11-22T02:00:00Z`), a manual one ends in
`#manual-<random>`. RQ accepts only `[A-Za-z0-9_-]` in a job id and BullMQ refuses `:`, so for
those two the run id is encoded by one reversible rule: every character outside A-Z, a-z, 0-9
and `-` becomes `_` and its two upper-case hex digits (UTF-8 bytes, one `_XX` per byte).

    nightly@2026-11-22T02:00:00Z  <->  nightly_402026-11-22T02_3A00_3A00Z

A worker reads the run id back with `decode_run_id(job_id)` (or the three-line rule in the README).
"""

from __future__ import annotations

import re

_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPE = re.compile(rb"_([0-9A-F]{2})")


def encode_run_id(run_id: str) -> str:
    """`a.b@2026-11-22T02:00:00Z` -> `a_2Eb_402026-11-22T02_3A00_3A00Z` (see the module text)."""
    return "".join(
        chr(byte) if byte in _PLAIN else f"_{byte:02X}" for byte in run_id.encode("utf-8")
    )


def decode_run_id(job_id: str) -> str:
    """The inverse of encode_run_id."""
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), job_id.encode("ascii")).decode(
        "utf-8"
    )
