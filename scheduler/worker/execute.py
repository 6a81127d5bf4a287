"""Running one delivered run: find its job, call it, decide what its outcome means, and write
that verdict (acknowledgement, success record, retry or dead letter) in one script call."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.store.connection import REDIS_ERRORS, Backoff, ErrorEpisodes
from scheduler.store.workqueue import WorkQueue
from scheduler.worker.jobs import JobSpec, Registry, bind_args
from scheduler.worker.metrics import WorkerMetrics
from scheduler.worker.policy import retry_delay_s
from scheduler.worker.runs import (
    BadEntry,
    Claims,
    attempt_of,
    dead_letter,
    next_attempt,
    read_run,
)

log = logging.getLogger("scheduler.worker")


@dataclass(frozen=True)
class Verdict:
    outcome: str  # succeeded, retried or dead (metrics.OUTCOMES)
    reason: str = ""  # dead: give_up, retries_exhausted, unknown_job, bad_entry, bad_args
    error: BaseException | None = None
    message: str = ""
    delay_s: float = 0.0  # retried: how long until the next attempt is due


def decide(spec: JobSpec, attempt: int, error: BaseException | None, uniform: float) -> Verdict:
    """What an attempt's result means: pure, so the policy is tested without a worker."""
    if error is None:
        return Verdict("succeeded")
    if spec.gives_up_on(error):
        return Verdict("dead", "give_up", error)
    if attempt > spec.retries:
        return Verdict("dead", "retries_exhausted", error)
    delay = retry_delay_s(attempt, spec.backoff_base_s, spec.backoff_cap_s, uniform)
    return Verdict("retried", error=error, delay_s=delay)


class JobTimeout(Exception):
    """An attempt ran past its job's timeout."""


@dataclass(eq=False)
class InFlight:
    """A run this worker read, from delivery to verdict; settled exactly once (by the thread
    that ran it, or by the main loop when it timed out or was handed over)."""

    queue: str
    stream: str
    entry_id: str
    fields: dict[str, str]
    job: str = ""
    started: float | None = None  # time.monotonic()
    deadline: float | None = None
    settled: bool = False
    abandoned: bool = False  # settled by the main loop on a timeout: its runner bows out
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, abandon: bool = False) -> bool:
        """True for the one caller that settles this run."""
        with self.lock:
            if self.settled:
                return False
            self.settled = True
            self.abandoned = abandon
            return True


class Executor:
    def __init__(
        self,
        work: WorkQueue,
        registry: Registry,
        metrics: WorkerMetrics,
        consumer: str,
        idempotency_ttl_s: int,
        visibility_timeout_s: float,
        on_retry: Callable[[float], None],
    ) -> None:
        self._work = work
        self._registry = registry
        self._metrics = metrics
        self._consumer = consumer
        self._ttl_s = idempotency_ttl_s
        self._visibility_s = visibility_timeout_s
        self._on_retry = on_retry
        self._random = random.Random()
        self._random_lock = threading.Lock()
        self._episodes = ErrorEpisodes("worker: recording a run's outcome")
        self.claims: Claims = (self._claim_once, self._release_once)

    def execute(self, item: InFlight) -> None:
        """Run `item`'s job on this thread and settle it, unless the main loop did already."""
        spec = self._registry.get(item.job)
        item.started = time.monotonic()
        if spec is None:
            modules = ", ".join(self._registry.modules) or "none"
            message = f"no imported module registered job {item.job!r} (imported: {modules})"
            self._settle(item, Verdict("dead", "unknown_job", message=message))
            return
        if spec.timeout_s is not None:
            item.deadline = item.started + spec.timeout_s
        try:
            run = read_run(
                item.fields,
                item.entry_id,
                item.queue,
                deadline=item.deadline,
                holder=self._consumer,
                claims=self.claims,
            )
        except BadEntry as error:
            self._settle(item, Verdict("dead", "bad_entry", error))
            return
        try:
            call = bind_args(spec, run.args, run)
        except TypeError as error:
            self._settle(item, Verdict("dead", "bad_args", error))
            return
        context = {"run_id": run.run_id, "schedule": run.schedule}
        log.debug("running %s (attempt %d)", spec.name, run.attempt, extra=context)
        failure: BaseException | None = None
        try:
            spec.func(*call.args, **call.kwargs)
        except (Exception, SystemExit) as error:  # SystemExit: a job's sys.exit() is a failure
            failure = error
        self._metrics.ran(spec.name, time.monotonic() - item.started)
        self._settle(item, decide(spec, run.attempt, failure, self._uniform()))

    def timed_out(self, item: InFlight) -> bool:
        """The main loop's verdict on an attempt past its deadline: failed, like an exception;
        its thread cannot be stopped and its eventual result is ignored. False when the job
        finished first."""
        spec = self._registry.get(item.job)
        assert spec is not None and spec.timeout_s is not None
        error = JobTimeout(f"job {spec.name!r} ran longer than its timeout of {spec.timeout_s:g}s")
        verdict = decide(spec, attempt_of(item.fields), error, self._uniform())
        if not self._settle(item, verdict, abandon=True):
            return False
        self._metrics.ran(spec.name, spec.timeout_s)
        return True

    def duplicate(self, item: InFlight) -> None:
        """A run whose id already succeeded: acknowledged, not run."""
        if item.take():
            self._write(item, lambda: self._work.ack(item.stream, item.entry_id))
            self._metrics.finished(item.queue, item.job, "duplicate")
            log.info(
                "run %s already succeeded: acknowledged without running it",
                item.fields.get("run_id"),
                extra={"run_id": item.fields.get("run_id")},
            )

    def _settle(self, item: InFlight, verdict: Verdict, abandon: bool = False) -> bool:
        if not item.take(abandon):
            return False  # the main loop settled it (timeout) while the job ran
        fields, entry, now_s = item.fields, item.entry_id, time.time()
        run_id = fields.get("run_id", "")
        context = {"run_id": run_id, "schedule": fields.get("schedule")}
        attempt = attempt_of(fields)
        if verdict.outcome == "succeeded":
            acked = self._write(
                item,
                lambda: self._work.settle_done(
                    item.stream, entry, run_id, self._consumer, self._ttl_s
                ),
            )
        elif verdict.outcome == "retried":
            retry = next_attempt(fields, entry, now_s)
            delay_ms = max(1, round(verdict.delay_s * 1000))
            acked = self._write(
                item,
                lambda: self._work.settle_retry(item.stream, item.queue, entry, delay_ms, retry),
            )
            if acked:
                self._on_retry(verdict.delay_s)
                log.warning(
                    "attempt %d of %s failed (%s: %s); attempt %d in %.3gs",
                    attempt,
                    item.job,
                    type(verdict.error).__name__,
                    verdict.error,
                    attempt + 1,
                    verdict.delay_s,
                    extra=context,
                )
        else:
            letter = dead_letter(
                fields, entry, verdict.reason, verdict.error, verdict.message, self._consumer, now_s
            )
            acked = self._write(
                item, lambda: self._work.settle_dead(item.stream, item.queue, entry, letter)
            )
            if acked:
                log.error(
                    "run of %s is dead after %d attempt(s) (%s): %s",
                    item.job,
                    attempt,
                    verdict.reason,
                    letter["error_message"],
                    extra=context,
                )
        if acked is False:
            # Claimed by another worker after the visibility timeout, which settled it first.
            log.warning("run %s was settled by another worker meanwhile", run_id, extra=context)
        self._metrics.finished(item.queue, item.job, verdict.outcome)
        return True

    def _write(self, item: InFlight, call: Callable[[], bool]) -> bool | None:
        """Retry a verdict's write through a Redis outage for up to a visibility timeout; after
        that the run is left pending, and another worker claims and runs it again."""
        backoff = Backoff(0.05, 1.0)
        give_up_at = time.monotonic() + self._visibility_s
        while True:
            try:
                result = call()
            except REDIS_ERRORS as error:
                self._episodes.failed(error)
                if time.monotonic() >= give_up_at:
                    log.error(
                        "could not record the outcome of entry %s of %s: left pending, another "
                        "worker will claim it",
                        item.entry_id,
                        item.stream,
                    )
                    return None
                time.sleep(backoff.next_delay())
                continue
            self._episodes.recovered()
            return result

    def _uniform(self) -> float:
        with self._random_lock:
            return self._random.random()

    def _claim_once(self, name: str, key: str, holder: str) -> bool:
        return self._work.claim_once(name, key, holder, self._ttl_s)

    def _release_once(self, name: str, key: str) -> None:
        self._work.release_once(name, key)
