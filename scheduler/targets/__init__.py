"""Where runs go. A target writes a batch of due fires atomically with the fence and the cursor.

The seam: a target is one module with one class implementing `Target`. Targets inside the same
Redis (a Celery, RQ, Sidekiq or BullMQ queue) add one Lua script to scripts.py that differs from
ENQUEUE_STREAM only in how it writes the run, keeping fence check, cursor check and cursor advance
in the same atomic call. Targets outside Redis go through an outbox: the stream target writes to
an outbox stream and a relay delivers from there, so the atomic step stays inside Redis.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from scheduler.config import Schedule


class Trigger(str, enum.Enum):
    SCHEDULED = "scheduled"
    CATCHUP = "catchup"
    MANUAL = "manual"


class Outcome(enum.Enum):
    ENQUEUED = "enqueued"
    DUPLICATE = "duplicate"  # the cursor was already at or past this fire: someone did it
    PAUSED = "paused"  # the schedule is paused: cursor advanced, nothing written
    FENCED = "fenced"  # our lease is gone: nothing written
    # The queue cannot take runs (its key holds another type): nothing written, cursor unmoved;
    # a configuration error of that queue, retried later, that leaves other queues alone.
    REFUSED = "refused"


class DueFire(NamedTuple):  # a tuple: made tens of thousands of times a second
    schedule: Schedule
    fire_ts: int
    trigger: Trigger


@dataclass(frozen=True)
class Written:
    """What a target did with a batch: one outcome per fire, and when each was written
    (Redis time, seconds; fires of one script call share it)."""

    outcomes: list[Outcome]
    enqueued_at_s: list[float]


@dataclass(frozen=True, slots=True)
class Lease:
    """What a write needs to prove it comes from the current leader."""

    value: str  # `<token>:<replica-id>`, the leader key's content
    token: int
    replica_id: str


class Prepared(Protocol):
    """A batch encoded ahead of its instant, ready to send."""

    @property
    def fires(self) -> Sequence[DueFire]: ...


class Target(Protocol):
    def prepare(self, lease: Lease, fires: Sequence[DueFire]) -> Prepared:
        """Encode `fires` (grouped by schedule, in fire-time order within one) for sending. The
        leader prepares a second's batch before the second begins, so that at the instant only
        the write itself is left."""
        ...

    def send(self, prepared: Prepared) -> Written:
        """Write a prepared batch: each schedule's fires fenced, de-duplicated and written
        atomically."""
        ...
