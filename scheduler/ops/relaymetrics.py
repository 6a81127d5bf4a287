"""The outbox relay's metrics (daemon/relay.py): per relayed queue, what it delivered, retried
and failed, how long runs waited in the outbox, and how the outbox stands. Leader only."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# delivered_at - enqueued_at: from a few ms (a healthy relay) to hours (a target down).
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.delivered = Counter(
            "cronlease_relay_delivered_total",
            "Runs the target confirmed durably and the relay acknowledged, per relayed queue",
            ["queue"],
            registry=r,
        )
        self.duplicates = Counter(
            "cronlease_relay_duplicates_total",
            "Delivered runs the target already had (its dedup by run id said so)",
            ["queue"],
            registry=r,
        )
        self.redelivered = Counter(
            "cronlease_relay_redelivered_total",
            "Runs delivered again after an attempt that may have reached the target (a relay "
            "that died or failed mid-batch): the most duplicates a target without dedup "
            "(RabbitMQ) can hold",
            ["queue"],
            registry=r,
        )
        self.retried = Counter(
            "cronlease_relay_retried_total",
            "Runs offered again after a failed delivery (they stayed in the outbox)",
            ["queue"],
            registry=r,
        )
        self.failed = Counter(
            "cronlease_relay_failed_total",
            "Delivery attempts that failed (target down, refused, unroutable)",
            ["queue"],
            registry=r,
        )
        self.lag = Histogram(
            "cronlease_relay_lag_seconds",
            "delivered_at - enqueued_at of each run the relay delivered",
            ["queue"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.outbox_length = Gauge(
            "cronlease_outbox_length",
            "Entries in the queue's outbox stream (leader only)",
            ["queue"],
            registry=r,
        )
        self.outbox_waiting = Gauge(
            "cronlease_outbox_waiting",
            "Runs in the outbox the target has not confirmed yet (leader only)",
            ["queue"],
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "cronlease_outbox_oldest_age_seconds",
            "Age of the oldest run the target has not confirmed (0: none; leader only)",
            ["queue"],
            registry=r,
        )

    def start(self, queue: str) -> None:
        """A queue's relay starts here: its counters exist from 0, so the first batch a new
        leader delivers (often a dead one's, redelivered) shows as an increase."""
        for counter in (self.delivered, self.duplicates, self.redelivered, self.retried):
            counter.labels(queue)
        self.failed.labels(queue)

    def show(self, queue: str, length: int, waiting: int, oldest_age_s: float | None) -> None:
        self.outbox_length.labels(queue).set(length)
        self.outbox_waiting.labels(queue).set(waiting)
        self.outbox_oldest_age.labels(queue).set(oldest_age_s or 0.0)

    def clear(self, queue: str) -> None:
        """A queue no longer relayed here (not leading, or removed): its gauges go."""
        for gauge in (self.outbox_length, self.outbox_waiting, self.outbox_oldest_age):
            with contextlib.suppress(KeyError):
                gauge.remove(queue)
