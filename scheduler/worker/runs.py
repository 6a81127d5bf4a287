"""A run as a job sees it (`Run`, with `once`), read from a stream entry, and the entries a
failed attempt becomes: its next attempt, or its dead letter."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from scheduler.core.timefmt import rfc3339_utc_ms

# Fields the worker adds to a run's entry; a replayed dead letter loses them (a first attempt).
ATTEMPT_FIELDS = ("attempt", "retry_of", "first_failed_at")
DEAD_FIELDS = (
    "reason", "error_class", "error_message", "traceback", "attempts", "last_failed_at",
    "original_id", "worker",
)  # fmt: skip
TRACEBACK_TAIL_CHARS = 2000
MESSAGE_CHARS = 1000


class BadEntry(Exception):
    """A stream entry that is not a run this worker can read (no run_id, args not JSON)."""


class Once:
    """`with run.once(name, key) as first:`: `first` is True for exactly one entry into the
    block per (name, key) within the remembered time, across redeliveries, retries, backfills
    and workers. The claim is taken on entry (SET NX) and given back if the block raises, so a
    retry does the work again; if the worker dies inside the block, the claim stays and the work
    is NOT redone: at most once, for effects where a duplicate is worse than a miss."""

    def __init__(self, claim: Callable[[], bool], release: Callable[[], None]) -> None:
        self._claim = claim
        self._release = release
        self.first = False

    def __enter__(self) -> bool:
        self.first = self._claim()
        return self.first

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None and self.first:
            self._release()


# (name, key, holder) -> claimed?; (name, key) -> released
Claims = tuple[Callable[[str, str, str], bool], Callable[[str, str], None]]


@dataclass(frozen=True)
class Run:
    """What a job gets when it has a parameter named `run`."""

    run_id: str
    schedule: str
    job: str
    queue: str
    fire_time: str  # RFC 3339 UTC, the nominal fire time
    fire_ts: int
    trigger: str  # scheduled, catchup, manual, backfill
    attempt: int  # 1 for the first
    enqueued_at: str
    entry_id: str
    args: Any
    deadline: float | None = None  # time.monotonic() past which the attempt is given up on
    holder: str = ""  # who runs it: the worker's consumer name
    claims: Claims | None = field(default=None, repr=False, compare=False)

    def once(self, name: str, key: str | None = None) -> Once:
        """Guard one effect of this run (key: the run id unless given), see Once."""
        if self.claims is None:
            raise RuntimeError("run.once needs a worker (this Run was built without one)")
        claim, release = self.claims
        the_key = self.run_id if key is None else key
        holder = f"{self.holder} {self.run_id} attempt {self.attempt}"
        return Once(lambda: claim(name, the_key, holder), lambda: release(name, the_key))

    def time_left_s(self) -> float | None:
        """Seconds left before the timeout, for jobs that can stop early; None: no timeout."""
        return None if self.deadline is None else self.deadline - time.monotonic()


def read_run(
    fields: Mapping[str, str],
    entry_id: str,
    queue: str,
    *,
    deadline: float | None = None,
    holder: str = "",
    claims: Claims | None = None,
) -> Run:
    """The Run of a stream entry; BadEntry when it is not one."""
    run_id = fields.get("run_id", "")
    if not run_id:
        raise BadEntry("the entry has no run_id")
    try:
        args = json.loads(fields["args"]) if fields.get("args") else None
    except ValueError as error:
        raise BadEntry(f"args is not JSON: {error}") from None
    try:
        attempt = int(fields.get("attempt") or 1)
        fire_ts = int(fields.get("fire_ts") or 0)
    except ValueError as error:
        raise BadEntry(f"attempt or fire_ts is not a number: {error}") from None
    return Run(
        run_id=run_id,
        schedule=fields.get("schedule", ""),
        job=fields.get("job", ""),
        queue=fields.get("queue") or queue,
        fire_time=fields.get("fire_time", ""),
        fire_ts=fire_ts,
        trigger=fields.get("trigger", ""),
        attempt=max(attempt, 1),
        enqueued_at=fields.get("enqueued_at", ""),
        entry_id=entry_id,
        args=args,
        deadline=deadline,
        holder=holder,
        claims=claims,
    )


def attempt_of(fields: Mapping[str, str]) -> int:
    try:
        return max(int(fields.get("attempt") or 1), 1)
    except ValueError:
        return 1


def run_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """The run's own fields: what it was enqueued with, without the worker's additions."""
    return {k: v for k, v in fields.items() if k not in ATTEMPT_FIELDS and k not in DEAD_FIELDS}


def next_attempt(fields: Mapping[str, str], entry_id: str, now_s: float) -> dict[str, str]:
    """The entry of the next attempt: the run, its attempt number, when it first failed, and
    the entry it came from (which also keeps two retries of one run apart in the retry set)."""
    return {
        **run_fields(fields),
        "attempt": str(attempt_of(fields) + 1),
        "retry_of": entry_id,
        "first_failed_at": fields.get("first_failed_at") or rfc3339_utc_ms(now_s),
    }


def dead_letter(
    fields: Mapping[str, str],
    entry_id: str,
    reason: str,
    error: BaseException | None,
    message: str,
    worker: str,
    now_s: float,
) -> dict[str, str]:
    """The dead letter of a run: the run, why it died, its error and attempts."""
    failed_at = rfc3339_utc_ms(now_s)
    if error is not None:
        kind = type(error)
        error_class = f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")
        text = "".join(traceback.format_exception(kind, error, error.__traceback__))
        message = message or str(error)
    else:
        # No exception: the worker's own finding, e.g. a job name nobody registered.
        error_class, text = "".join(part.title() for part in reason.split("_")), ""
    return {
        **run_fields(fields),
        "reason": reason,
        "error_class": error_class,
        "error_message": message[:MESSAGE_CHARS],
        "traceback": text[-TRACEBACK_TAIL_CHARS:],
        "attempts": str(attempt_of(fields)),
        "first_failed_at": fields.get("first_failed_at") or failed_at,
        "last_failed_at": failed_at,
        "original_id": entry_id,
        "worker": worker,
    }
