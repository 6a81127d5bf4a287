"""Pieces every command shares: the user-mistake error, schedule lookup, plain tables."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from scheduler.core.schedule import Config, Schedule


class UsageError(Exception):
    """A user's mistake: printed as one sentence, exit 2."""


def find_schedule(config: Config, name: str) -> Schedule:
    by_name = config.by_name()
    if name in by_name:
        return by_name[name]
    close = difflib.get_close_matches(name, list(by_name), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UsageError(f"unknown schedule {name!r} in {config.source}{hint}")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart, as lines."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
