"""The typed call of WRITE_RUNS: an operator's runs into another job system's queue.

WRITE_RUNS (store/lua/targets.py) writes runs whose Redis writes a target module built
(targets/encoding.py) outside the cron cursor, after checking every key's type and that the
token the payloads carry is still the one a run written now would carry. `cronlease trigger`,
`cronlease backfill` and the page's "trigger now" reach it through targets/operator.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from scheduler.store.keys import Keys
from scheduler.store.lua import WRITE_RUNS

# The first index into KEYS of the target's keys (KEYS[1] leader, KEYS[2] epoch).
FIRST_TARGET_KEY = 3

_TOKEN_MOVED = -4
_WRONG_TYPE = -3


class WrongKeyType(RedisError):
    """A key the runs would write holds another type than their command writes: nothing was
    written (the script checks every key before its first write)."""

    def __init__(self, key: str, found: str, wanted: str) -> None:
        super().__init__(f"the key {key} holds a {found}, where a {wanted} is written")
        self.key = key
        self.found = found
        self.wanted = wanted


@dataclass(frozen=True)
class RunsWritten:
    codes: list[int]  # per run: 1 written, 0 already there (its guard key exists)
    # Set instead when the token given is no longer the current one (a lease was acquired
    # since it was read): nothing was written, the runs are to be rebuilt with this token.
    token_now: str | None = None


class RunWriter:
    """WRITE_RUNS, registered on one client."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._keys = keys
        self._script = client.register_script(WRITE_RUNS)

    def write(
        self, token: str, keys: Sequence[str], db: int | None, count: int, args: Sequence[Any]
    ) -> RunsWritten:
        """Write `count` runs (their writes in `args`, KEYS from FIRST_TARGET_KEY on: `keys`)
        into `db` (None: the client's), if `token` is still current."""
        reply = self._script(
            keys=[self._keys.leader, self._keys.epoch, *keys],
            args=[token, "" if db is None else db, count, *args],
        )
        if reply and int(reply[0]) == _TOKEN_MOVED:
            return RunsWritten([], _text(reply[1]))
        if reply and int(reply[0]) == _WRONG_TYPE:
            raise WrongKeyType(_text(reply[1]), _text(reply[2]), _text(reply[3]))
        return RunsWritten([int(code) for code in reply])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
