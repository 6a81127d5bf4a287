"""Where runs go. A target writes a batch of due fires atomically with the fence and the cursor.

The seam: a target is one module with one class implementing `Target`. Targets inside the same
Redis (a Celery, RQ, Sidekiq or BullMQ queue) add one Lua script to store/lua.py that differs from
ENQUEUE_STREAM only in how it writes the run, keeping fence check, cursor check and cursor advance
in the same atomic call. Targets outside Redis go through an outbox: the stream target writes to
an outbox stream and a relay delivers from there, so the atomic step stays inside Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from scheduler.core.runs import DueFire, Lease, Written


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
