"""What an in-Redis target module provides: a run -> the Redis writes that put it in the target.

Each job system (Celery, RQ, Sidekiq, arq, Dramatiq, BullMQ) has one module in this package with
one `Encoder` class. It is pure: it turns a `Run` into `Writes` (Redis commands with their
payloads already built, pickled or JSON-encoded in Python), and the enqueue script
(store/lua/targets.py ENQUEUE_TARGET) executes them inside the same fenced, de-duplicated call that
moves the schedule's cursor. So the instant costs only Redis's writes, and a run is in the
target exactly once, or nothing is written.

The rules the script enforces, which an encoder relies on:
- each op is `(COMMAND, key, *values)` with one key, the command one of WRITE_COMMANDS;
- before any write, every key an op touches is checked to be of its command's type (or absent);
  a key of another type refuses the runs that touch it (their cursors stay, nothing written);
- `guard`, when given, is a key that exists only once the run is in the target (the job's own
  key): if it exists, the run is counted a duplicate and nothing is written;
- `when_field` (a hash key and field) chooses between two lists of ops at the instant: when the
  field exists, `when_ops` are written instead of `ops` (both lists' keys are type-checked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scheduler.core.queues import QueueSpec

# The commands an op may use, and the type their key must have (or be absent).
WRITE_COMMANDS = {
    "LPUSH": "list",
    "RPUSH": "list",
    "HSET": "hash",
    "SADD": "set",
    "ZADD": "zset",
    "PSETEX": "string",
    "SET": "string",
    "INCR": "string",
    "XADD": "stream",
}

Value = str | bytes | int | float
Op = tuple[Any, ...]  # (COMMAND, key, *values): Value each


@dataclass(frozen=True, slots=True)
class Run:
    """One run's fields, as DESIGN's run table has them (everything a target may carry)."""

    run_id: str  # `<schedule>@<fire time>`; encode it with targets/runid.py where needed
    schedule: str
    job: str
    args: Mapping[str, Any] | tuple[Any, ...]  # keyword arguments, or positional ones
    args_json: str
    queue: str  # the cronlease queue name (the spec's `name` is the target's own)
    fire_time: str  # RFC 3339, UTC: `2026-11-22T02:00:00Z`
    fire_ts: int
    # When the leader writes the run (Unix seconds): the instant it planned the write for, as
    # the payload is built ahead of it (Redis's TIME of the call is within milliseconds of it).
    enqueued_at: float
    enqueued_at_text: str  # the same, RFC 3339 with milliseconds: `2026-11-22T02:00:00.000Z`
    trigger: str  # scheduled | catchup | manual | backfill
    token: str  # the fencing token, as text (16 digits: exact only as text)
    replica: str

    def meta(self) -> dict[str, str]:
        """The run's fields as the metadata a target carries beside the job (DESIGN)."""
        return {
            "run_id": self.run_id,
            "schedule": self.schedule,
            "queue": self.queue,
            "fire_time": self.fire_time,
            "fire_ts": str(self.fire_ts),
            "enqueued_at": self.enqueued_at_text,
            "trigger": self.trigger,
            "token": self.token,
            "replica": self.replica,
        }


@dataclass(frozen=True, slots=True)
class Writes:
    ops: tuple[Op, ...]
    guard: str | None = None
    # When this hash field exists at the instant, `when_ops` are written instead of `ops`
    # (BullMQ 5: a paused queue's runs go to its paused list). (key, field), or None.
    when_field: tuple[str, str] | None = None
    when_ops: tuple[Op, ...] = ()


@dataclass(frozen=True, slots=True)
class Length:
    """A key whose size counts toward the queue's length gauge."""

    key: str
    kind: str  # "list" (LLEN) or "zset" (ZCARD)


class Encoder(Protocol):
    spec: QueueSpec

    def writes(self, run: Run) -> Writes:
        """The ops that put `run` in the target, payloads built."""
        ...

    def lengths(self) -> Sequence[Length]:
        """Where the target keeps the queue's waiting jobs (for the queue-length gauge)."""
        ...

    def job_id(self, run_id: str) -> str:
        """The target's job id for a run id (the run id itself, or its encoding)."""
        ...


def add_writes(args: list[object], keys: dict[str, int], writes: Writes, first_key: int) -> None:
    """Append a run's writes to a target script's ARGV in the order store/lua/targets.py
    _LUA_OPS reads them; `keys` numbers every key used (KEYS[first_key] is the first)."""

    def index(key: str) -> int:
        return keys.setdefault(key, len(keys) + first_key)

    def add_ops(ops: tuple[Op, ...]) -> None:
        args.append(len(ops))
        for command, key, *values in ops:
            args.extend((len(values), command, index(key), *values))

    args.append(0 if writes.guard is None else index(writes.guard))
    add_ops(writes.ops)
    if writes.when_field is None:
        args.append(0)
    else:
        key, field = writes.when_field
        args.extend((index(key), field))
        add_ops(writes.when_ops)
