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
from typing import Protocol

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


@dataclass(frozen=True, slots=True)
class DueFire:
    schedule: Schedule
    fire_ts: int
    trigger: Trigger


@dataclass(frozen=True, slots=True)
class Lease:
    """What a write needs to prove it comes from the current leader."""

    value: str  # `<token>:<replica-id>`, the leader key's content
    token: int
    replica_id: str


class Target(Protocol):
    def enqueue(self, lease: Lease, fires: Sequence[DueFire], enqueued_at: str) -> list[Outcome]:
        """Write `fires` (in fire-time order per schedule) atomically; one outcome per fire."""
        ...
