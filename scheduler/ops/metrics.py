"""Every Prometheus metric of cronlease, on a registry passed in (never the global one).

Names start with `cronlease_`, use base units (seconds, timestamps in seconds) and `_total` for
counters. Labelled series are created at zero so that `rate()` and alerts see them before the
first event. Per-schedule series can be switched off for very large schedule sets.
"""

from __future__ import annotations

import bisect
import itertools
import math
import platform
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from scheduler import __version__
from scheduler.core.schedule import Config
from scheduler.ops.relaymetrics import RelayMetrics

OUTCOMES = ("enqueued", "caught_up", "deduplicated", "fenced", "skipped", "misfired", "failed")
SKIP_REASONS = ("paused", "disabled", "outside_window")
# Why a fire could not be written yet (it is retried: the cursor did not move).
FAIL_REASONS = ("queue_wrong_type",)
LEADER_EVENTS = ("elected", "demoted", "released", "fenced", "unacknowledged")
RENEW_RESULTS = ("ok", "lost", "error")
RELOAD_RESULTS = ("success", "failure")
REDIS_ERROR_KINDS = (
    "connection", "timeout", "loading", "readonly", "noperm", "noreplicas", "response", "other",
)  # fmt: skip
# Writes confirmed with WAIT under --redis-wait-replicas (scheduler/durability.py).
DURABLE_WRITES = ("acquire", "renew", "enqueue")
# 1 ms to 10 min: on-time runs sit in the first buckets, catch-up runs in the last.
LAG_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
# Above this many schedules, per-schedule series are off unless asked for.
PER_SCHEDULE_LIMIT = 1000


class Metrics:
    def __init__(self, registry: CollectorRegistry, per_schedule: bool = True) -> None:
        self.registry = registry
        self.per_schedule = per_schedule
        r = registry
        self.leader = Gauge("cronlease_leader", "1 while this replica holds the lease", registry=r)
        self.leader_changes = Counter(
            "cronlease_leader_changes_total",
            "Leadership changes of this replica, by event",
            ["event"],
            registry=r,
        )
        self.lease_renewals = Counter(
            "cronlease_lease_renewals_total", "Lease renewals, by result", ["result"], registry=r
        )
        self.lease_renewal_duration = Histogram(
            "cronlease_lease_renewal_duration_seconds",
            "Round trip of one lease renewal",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.lease_token = Gauge(
            "cronlease_lease_token", "Fencing token of this replica's lease (0 if none)", registry=r
        )
        self.occurrences = Counter(
            "cronlease_occurrences_total",
            "Fire times by how they ended: enqueued, caught_up, deduplicated, fenced, skipped "
            "(with a reason), misfired, or failed (with a reason; retried later)",
            ["schedule", "outcome", "reason"],
            registry=r,
        )
        self.lag = WeightedHistogram(
            "cronlease_enqueue_lag_seconds",
            "enqueued_at minus fire_time of each run written",
            LAG_BUCKETS_S,
        )
        r.register(self.lag)
        self.last_fire = Gauge(
            "cronlease_schedule_last_fire_timestamp_seconds",
            "Fire time of the schedule's last enqueued run (leader only)",
            ["schedule"],
            registry=r,
        )
        self.next_fire = Gauge(
            "cronlease_schedule_next_fire_timestamp_seconds",
            "When the schedule fires next (leader only); in the past means overdue",
            ["schedule"],
            registry=r,
        )
        self.interval = Gauge(
            "cronlease_schedule_interval_seconds",
            "Expected (shortest) interval between fires; 0 for one-shots",
            ["schedule"],
            registry=r,
        )
        self.paused = Gauge(
            "cronlease_schedule_paused", "1 while the schedule is paused", ["schedule"], registry=r
        )
        self.schedules = Gauge(
            "cronlease_schedules",
            "Schedules in the running config, by state",
            ["state"],
            registry=r,
        )
        self.config_info = Gauge(
            "cronlease_config_info", "The running config's hash", ["hash"], registry=r
        )
        self.reloads = Counter(
            "cronlease_config_reloads_total", "Config reloads, by result", ["result"], registry=r
        )
        self.last_reload_success = Gauge(
            "cronlease_config_last_reload_successful",
            "1 if the last reload attempt succeeded",
            registry=r,
        )
        self.last_reload_time = Gauge(
            "cronlease_config_last_reload_timestamp_seconds",
            "When the config was last (re)loaded or a reload was attempted",
            registry=r,
        )
        self.config_drift = Gauge(
            "cronlease_config_drift",
            "1 when this replica's config hash differs from the leader's",
            registry=r,
        )
        self.queue_length = Gauge(
            "cronlease_queue_length",
            "Runs waiting in the queue: its stream's entries, or the target's own queue "
            "(list length, zset size; leader only)",
            ["queue"],
            registry=r,
        )
        self.queue_target = Gauge(
            "cronlease_queue_target_info",
            "Where each queue's runs go: target (stream, celery, rq, ...), the target's own "
            "queue name and logical db ('' for the scheduler's)",
            ["queue", "target", "name", "db"],
            registry=r,
        )
        self.queue_pending = Gauge(
            "cronlease_queue_pending",
            "Entries delivered to a consumer group but not acknowledged (leader only)",
            ["queue", "group"],
            registry=r,
        )
        self.queue_lag = Gauge(
            "cronlease_queue_undelivered",
            "Entries not yet delivered to a consumer group (leader only)",
            ["queue", "group"],
            registry=r,
        )
        self.queue_oldest_age = Gauge(
            "cronlease_queue_oldest_entry_age_seconds",
            "Age of the oldest entry in the queue stream (leader only)",
            ["queue"],
            registry=r,
        )
        self.redis_errors = Counter(
            "cronlease_redis_errors_total", "Failed Redis calls, by kind", ["kind"], registry=r
        )
        self.unacknowledged_writes = Counter(
            "cronlease_redis_unacknowledged_writes_total",
            "Lease and enqueue writes that fewer replicas than --redis-wait-replicas acknowledged "
            "in time (not acted on: a failover could lose them)",
            ["write"],
            registry=r,
        )
        self.loop_last_turn = Gauge(
            "cronlease_loop_last_turn_timestamp_seconds",
            "When the main loop last turned (wall clock)",
            registry=r,
        )
        self.relay = RelayMetrics(r)
        self.build = Info("cronlease_build", "Version of cronlease and Python", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})

        for event in LEADER_EVENTS:
            self.leader_changes.labels(event)
        for result in RENEW_RESULTS:
            self.lease_renewals.labels(result)
        for result in RELOAD_RESULTS:
            self.reloads.labels(result)
        for kind in REDIS_ERROR_KINDS:
            self.redis_errors.labels(kind)
        for write in DURABLE_WRITES:
            self.unacknowledged_writes.labels(write)
        if not per_schedule:
            self._init_occurrences("")

    def _init_occurrences(self, schedule: str) -> None:
        for outcome in OUTCOMES:
            if outcome in ("skipped", "failed"):
                for reason in SKIP_REASONS if outcome == "skipped" else FAIL_REASONS:
                    self.occurrences.labels(schedule, outcome, reason)
            else:
                self.occurrences.labels(schedule, outcome, "")

    def schedule_label(self, name: str) -> str:
        """The `schedule` label value: the name, or "" when per-schedule series are off."""
        return name if self.per_schedule else ""

    def set_schedules(self, names: Iterable[str], intervals: dict[str, int]) -> None:
        """(Re)initialise per-schedule series for the running config; drop removed ones."""
        names = list(names)
        if not self.per_schedule:
            return
        keep = set(names)
        for metric in (self.last_fire, self.next_fire, self.interval, self.paused):
            for labels in _label_values(metric):
                if labels[0] not in keep:
                    metric.remove(*labels)
        for labels in _label_values(self.occurrences):
            if labels[0] not in keep:
                self.occurrences.remove(*labels)
        for name in names:
            self._init_occurrences(name)
            self.interval.labels(name).set(intervals.get(name, 0))
            self.paused.labels(name)

    def show_config(self, config: Config) -> None:
        """The running config: its hash, its schedules' series, how many are enabled."""
        self.config_info.clear()
        self.config_info.labels(config.digest).set(1)
        intervals = {s.name: s.timeline.shortest_interval_s or 0 for s in config.schedules}
        self.set_schedules([s.name for s in config.schedules], intervals)
        enabled = sum(1 for s in config.schedules if s.enabled)
        self.schedules.labels("enabled").set(enabled)
        self.queue_target.clear()
        for queue in sorted({s.queue for s in config.schedules} | set(config.queues)):
            spec = config.queue(queue)
            db = "" if spec.db is None else str(spec.db)
            self.queue_target.labels(queue, spec.target, spec.name, db).set(1)
        self.schedules.labels("disabled").set(len(config.schedules) - enabled)

    def show_queue(
        self,
        queue: str,
        length: int,
        oldest_age_s: float | None,
        groups: Mapping[str, tuple[int, int | None]],
    ) -> None:
        """One queue's figures: `groups` maps a consumer group to (pending, undelivered or
        None where Redis does not say, before 7.0)."""
        self.queue_length.labels(queue).set(length)
        if oldest_age_s is not None:  # None: another job system's queue, whose age is its own
            self.queue_oldest_age.labels(queue).set(oldest_age_s)
        for group, (pending, undelivered) in groups.items():
            self.queue_pending.labels(queue, group).set(pending)
            if undelivered is not None:
                self.queue_lag.labels(queue, group).set(undelivered)

    def clear_queues(self) -> None:
        """Only the leader shows queue figures."""
        for gauge in (self.queue_length, self.queue_pending, self.queue_lag, self.queue_oldest_age):
            gauge.clear()

    def occurrence(self, schedule: str, outcome: str, reason: str = "", count: int = 1) -> None:
        self.occurrences.labels(self.schedule_label(schedule), outcome, reason).inc(count)


class WeightedHistogram(Collector):
    """A histogram that takes `observe(value, count)`: the thousands of runs of one script call
    share one lag, so they are counted at once instead of one observe() each."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = [*buckets, math.inf]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float, count: int = 1) -> None:
        index = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[index] += count
            self._sum += value * count

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative = list(itertools.accumulate(counts))
        family = HistogramMetricFamily(self._name, self._documentation)
        family.add_metric(
            [],
            [(_bound(b), float(c)) for b, c in zip(self._bounds, cumulative, strict=True)],
            total,
        )
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._documentation)


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else str(floatToGoString(bound))  # type: ignore[no-untyped-call]


def _label_values(metric: Gauge | Counter) -> list[tuple[str, ...]]:
    # prometheus-client keeps children in a private dict; a copy of its keys is all we read.
    return [tuple(labels) for labels in metric._metrics]
