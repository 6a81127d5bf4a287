"""A relayed queue's URL, resolved where it is used: `${VAR}` from the environment, `url_file:`.

schedules.yaml never holds a literal password (validation refuses one): the URL is written
with `${VAR}` parts, or kept in a file named by `url_file:` (a Kubernetes Secret mounted as a
file, a systemd credential). Both are read when the relay connects, so a rotated secret is
picked up by the next connection, and the config's hash does not change with a password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from scheduler.core.queues import QueueSpec

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SecretMissing(Exception):
    """The URL names a variable that is not set, or a file that cannot be read."""


def resolve_url(spec: QueueSpec, environ: Mapping[str, str] | None = None) -> str:
    """The queue's URL with every `${VAR}` filled in (or read from its url_file)."""
    env = os.environ if environ is None else environ
    url_file = spec.options.get("url_file")
    if url_file:
        try:
            with open(str(url_file), encoding="utf-8") as handle:
                text = handle.read().strip()
        except OSError as error:
            raise SecretMissing(
                f"queue {spec.queue!r}: cannot read url_file {url_file}: {error.strerror}"
            ) from None
        if not text:
            raise SecretMissing(f"queue {spec.queue!r}: url_file {url_file} is empty")
        return expand(text, env, spec.queue)
    return expand(str(spec.options.get("url") or ""), env, spec.queue)


def expand(text: str, env: Mapping[str, str], queue: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise SecretMissing(
                f"queue {queue!r}: its url uses ${{{name}}}, which is not set in the "
                "environment of cronlease (set it, or use url_file:)"
            )
        return env[name]

    return _VARIABLE.sub(value, text)
