"""The deliverer interface: a batch of outbox runs -> the target, confirmed durably, in order.

Contract (the relay in daemon/relay.py relies on it):
- `deliver(runs)` writes the runs IN ORDER and returns how many of them, from the first, the
  target confirmed durably (`confirmed`): a prefix, so a schedule's runs never overtake each
  other. It stops at the first run it could not deliver and says why in `error`; the relay
  acknowledges only the prefix and offers the rest again, with backoff.
- The run id is the target's idempotency key wherever the target has one (PostgreSQL unique
  key, NATS `Nats-Msg-Id`, BullMQ jobId, a dedup key on another Redis): a run delivered twice
  (the relay died between the target's confirmation and the acknowledgement, or a new leader
  claimed a batch the old one had delivered) lands once, counted in `duplicates`. RabbitMQ has
  none: such a duplicate is possible there, and is counted by the relay (redelivered runs).
- `TargetUnavailable` means the target cannot be reached now (connection refused, timed out,
  closed): nothing of the batch is assumed confirmed; the deliverer reconnects on the next call.
- `open()` connects and checks what can be checked at start (returns warnings, e.g. a NATS
  duplicate window shorter than the catch-up window); it may raise TargetUnavailable.
- Nothing here reads cronlease's Redis: the relay owns the outbox and the acknowledgements.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scheduler.core.queues import QueueSpec


class TargetUnavailable(Exception):
    """The target cannot be reached or refused the connection: retry later, with backoff."""


@dataclass(frozen=True)
class OutboxRun:
    """One run as the outbox stream holds it: DESIGN's run table (every field a string)."""

    entry_id: str  # the outbox entry's id
    fields: Mapping[str, str]  # run_id, schedule, job, args (JSON), queue, fire_time, fire_ts,
    # enqueued_at, trigger, token, replica

    @property
    def run_id(self) -> str:
        return self.fields["run_id"]

    @property
    def args(self) -> Any:
        """The schedule's args: a dict (keyword arguments) or a list (positional ones)."""
        return json.loads(self.fields.get("args") or "{}")


@dataclass(frozen=True)
class Delivered:
    confirmed: int  # runs, from the first, the target confirmed durably
    duplicates: int = 0  # of those, runs the target already had (its dedup said so)
    error: str | None = None  # why the run after the confirmed ones was not delivered


class Deliverer(Protocol):
    spec: QueueSpec

    def open(self) -> list[str]:
        """Connect and check; warnings to log. May raise TargetUnavailable."""
        ...

    def deliver(self, runs: Sequence[OutboxRun]) -> Delivered:
        """Write `runs` in order; see the module text. May raise TargetUnavailable."""
        ...

    def close(self) -> None: ...
