"""Where runs go. A target writes a batch of due fires atomically with the fence and the cursor.

The seam: `RoutedTarget` (router.py) sends each fire to its queue's target. cronlease streams
are written by stream.py (ENQUEUE_STREAM); another job system in the same Redis (Celery, RQ,
Sidekiq, arq, Dramatiq, BullMQ) has one pure module here with an `Encoder` (encoding.py) that
turns a run into Redis writes, which ENQUEUE_TARGET executes inside the same fenced call as the
cursor. Targets outside Redis go through an outbox: the script writes to an outbox stream and a
relay delivers from there, so the atomic step stays inside Redis.
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
    def prepare(self, lease: Lease, fires: Sequence[DueFire], at: float) -> Prepared:
        """Encode `fires` (grouped by schedule, in fire-time order within one) for sending at
        `at` (Redis time). The leader prepares a second's batch before the second begins, so
        that at the instant only the write itself is left."""
        ...

    def send(self, prepared: Prepared) -> Written:
        """Write a prepared batch: each schedule's fires fenced, de-duplicated and written
        atomically."""
        ...

    def refusal(self, queue: str) -> str | None:
        """Why `queue` cannot take runs at all here (None: it can)."""
        ...
