"""The vocabulary of a run, shared by every layer: a due fire, its trigger, what a write did with
it, the lease a write proves, and a manual run's id. Plain data, no behaviour."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from typing import NamedTuple

from scheduler.core.schedule import Schedule


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


MANUAL_MARK = "#manual-"


def manual_run_id(name: str, fire_time: str) -> str:
    """`<name>@<fire_time>#manual-<random>`: never equal to a scheduled run's id (DESIGN's run
    table), whether the run goes to a stream or into another job system."""
    return f"{name}@{fire_time}{MANUAL_MARK}{secrets.token_hex(6)}"
