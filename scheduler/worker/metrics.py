"""The worker's Prometheus metrics, on a registry passed in (never the global one).

Labels stay bounded: `job` is a registered job name or `unknown` (a name no imported module
registered, read from a stream), `queue` one of --queues. Series start at zero so that rate()
and the alert rules see them before the first run.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("succeeded", "retried", "dead", "duplicate")
UNKNOWN_JOB = "unknown"
# 1 ms to 1 h: no-op jobs in the first buckets, nightly reports in the last.
DURATION_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip


class WorkerMetrics:
    def __init__(
        self, registry: CollectorRegistry, queues: Iterable[str], jobs: Iterable[str]
    ) -> None:
        r = registry
        self._jobs = frozenset(jobs)
        self.runs = Counter(
            "cronlease_worker_runs_total",
            "Runs a worker finished, by outcome: succeeded, retried (an attempt failed, another "
            "is scheduled), dead (moved to the dead letters), duplicate (already succeeded: "
            "acknowledged without running)",
            ["queue", "job", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "cronlease_worker_run_duration_seconds",
            "How long one attempt of a job ran, whatever its outcome",
            ["job"],
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self.in_flight = Gauge(
            "cronlease_worker_in_flight",
            "Runs this worker has read and not yet finished",
            ["queue"],
            registry=r,
        )
        self.retries_waiting = Gauge(
            "cronlease_worker_retries_waiting",
            "Runs waiting in the queue's retry set for their next attempt",
            ["queue"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "cronlease_worker_dead_letters",
            "Length of the queue's dead-letter stream",
            ["queue"],
            registry=r,
        )
        self.oldest_waiting_age = Gauge(
            "cronlease_worker_oldest_waiting_age_seconds",
            "Age of the queue's oldest run not yet started: undelivered in the stream, or due "
            "in the retry set; 0 when none waits",
            ["queue"],
            registry=r,
        )
        self.up = Gauge("cronlease_worker_up", "1 while this worker process runs", registry=r)
        self.up.set(1)
        for queue in queues:
            for name in (*sorted(self._jobs), UNKNOWN_JOB):
                for outcome in OUTCOMES:
                    self.runs.labels(queue, name, outcome)
            for gauge in (
                self.in_flight,
                self.retries_waiting,
                self.dead_letters,
                self.oldest_waiting_age,
            ):
                gauge.labels(queue).set(0)
        for name in sorted(self._jobs):
            self.duration.labels(name)

    def job_label(self, name: str) -> str:
        return name if name in self._jobs else UNKNOWN_JOB

    def finished(self, queue: str, job: str, outcome: str) -> None:
        self.runs.labels(queue, self.job_label(job), outcome).inc()

    def ran(self, job: str, duration_s: float) -> None:
        self.duration.labels(self.job_label(job)).observe(duration_s)
