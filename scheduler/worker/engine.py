"""The worker's main loop: read runs by priority, claim the dead's, promote due retries, keep
live runs from being claimed, enforce timeouts, and drain on stop. Jobs run on runner threads.

Timeouts: a Python thread cannot be stopped, so an attempt past its job's timeout is settled as
failed by this loop (retried or dead-lettered like an exception), its thread is abandoned (it
keeps running until the job returns, and its result is ignored) and a new runner takes its
place, so --concurrency runs keep going. Jobs that can stop early read `run.time_left_s()`.
"""

from __future__ import annotations

import contextlib
import logging
import queue as queues
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scheduler.store.connection import REDIS_ERRORS, Backoff, ErrorEpisodes
from scheduler.store.workqueue import Entry, WorkQueue
from scheduler.worker.execute import Executor, InFlight
from scheduler.worker.jobs import Registry
from scheduler.worker.metrics import WorkerMetrics

log = logging.getLogger("scheduler.worker")

MAX_BLOCK_S = 0.5  # how long a read waits for a run: also how late a stop is noticed
RETRY_POLL_S = 1.0  # retry sets are polled at least this often (other workers add to them)
STATS_EVERY_S = 2.0
STUCK_AFTER_S = 30.0  # /healthz fails when the loop has not turned for this long


@dataclass(frozen=True)
class WorkerOptions:
    queues: tuple[str, ...]  # highest priority first
    consumer: str
    concurrency: int = 4
    visibility_timeout_s: float = 30.0
    grace_s: float = 30.0
    idempotency_ttl_s: int = 7 * 86400
    weights: Mapping[str, float] | None = None  # instead of strict priority


def read_order(
    queues: Sequence[str], weights: Mapping[str, float] | None, rng: random.Random
) -> list[str]:
    """Strict priority, or with weights a weighted shuffle: each turn, a queue comes first with
    a chance proportional to its weight, so no queue starves under another's backlog."""
    if not weights:
        return list(queues)
    left, order = list(queues), []
    while left:
        pick = rng.choices(left, [weights.get(q, 1.0) for q in left])[0]
        order.append(pick)
        left.remove(pick)
    return order


class Worker:
    def __init__(
        self,
        work: WorkQueue,
        reader: WorkQueue,
        registry: Registry,
        options: WorkerOptions,
        metrics: WorkerMetrics,
    ) -> None:
        self._work = work
        self._reader = reader  # its own connection: blocking reads outlast the usual timeout
        self._registry = registry
        self._options = options
        self._metrics = metrics
        self._streams = {q: work.keys.queue(q) for q in options.queues}
        self._queue_of = {stream: q for q, stream in self._streams.items()}
        self._visibility_ms = max(1, round(options.visibility_timeout_s * 1000))
        self._executor = Executor(
            work,
            registry,
            metrics,
            options.consumer,
            options.idempotency_ttl_s,
            options.visibility_timeout_s,
            self._retry_scheduled,
        )
        self._inflight: dict[tuple[str, str], InFlight] = {}
        self._cond = threading.Condition()
        self._todo: queues.SimpleQueue[InFlight | None] = queues.SimpleQueue()
        self._stop = threading.Event()
        self._hard_stop = threading.Event()
        self._rng = random.Random()
        self._episodes = ErrorEpisodes("worker")
        self._backoff = Backoff(0.05, 2.0)
        self._next_promote = 0.0
        self._next_touch = 0.0
        self._next_stats = 0.0
        self._next_claim: dict[str, float] = dict.fromkeys(options.queues, 0.0)
        self._claim_cursor: dict[str, str] = dict.fromkeys(options.queues, "0-0")
        self._last_turn = time.monotonic()
        self._redis_ok = False
        self._groups_ready = False
        self._runners: list[threading.Thread] = []

    # -- control --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop reading and drain (SIGTERM); a second call skips the grace period."""
        if self._stop.is_set():
            self._hard_stop.set()
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def health(self) -> tuple[bool, str]:
        idle = time.monotonic() - self._last_turn
        if idle > STUCK_AFTER_S:
            return False, f"main loop has not turned for {idle:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        return (True, "ok") if self._redis_ok else (False, "Redis not reachable")

    def run(self) -> int:
        for _ in range(self._options.concurrency):
            self._start_runner()
        while not self._stop.is_set():
            self._last_turn = time.monotonic()
            try:
                self._turn()
            except REDIS_ERRORS as error:
                if "NOGROUP" in str(error):  # the stream was deleted, or Redis lost its data
                    self._groups_ready = False
                self._redis_ok = False
                self._episodes.failed(error)
                self._stop.wait(self._backoff.next_delay())
                continue
            if not self._redis_ok:
                self._episodes.recovered()
            self._redis_ok = True
            self._backoff.reset()
        self._drain()
        return 0

    # -- one turn -------------------------------------------------------------------------------

    def _turn(self) -> None:
        if not self._groups_ready:
            for stream in self._streams.values():
                if self._work.ensure_group(stream):
                    log.info("created consumer group %s of %s", self._work.group, stream)
            self._groups_ready = True
        now = time.monotonic()
        if now >= self._next_promote:
            self._promote(now)
        if now >= self._next_touch:
            self._touch()
            self._next_touch = now + self._options.visibility_timeout_s / 3
        if now >= self._next_stats:
            self._show_figures()
            self._next_stats = now + STATS_EVERY_S
        self._enforce_timeouts(now)
        free = self._free()
        if free <= 0:
            with self._cond:
                self._cond.wait_for(lambda: self._free() > 0 or self._stop.is_set(), self._wait_s())
            return
        if self._fill(free) == 0 and not self._stop.is_set():
            block_ms = max(1, round(self._wait_s() * 1000))
            streams = dict.fromkeys(self._streams.values(), 1)
            replies = self._reader.read(self._options.consumer, streams, block_ms)
            for stream, entries in replies:
                self._accept(stream, entries)

    def _free(self) -> int:
        return self._options.concurrency - len(self._inflight)

    def _wait_s(self) -> float:
        soonest = min(
            self._next_promote, self._next_touch, self._next_stats, *self._next_claim.values()
        )
        return min(MAX_BLOCK_S, max(0.001, soonest - time.monotonic()))

    def _fill(self, free: int) -> int:
        """Claim idle runs and read new ones, queue by queue in priority order, until the free
        slots are taken; how many were taken."""
        taken = 0
        now = time.monotonic()
        for queue in read_order(self._options.queues, self._options.weights, self._rng):
            stream = self._streams[queue]
            if free - taken > 0 and now >= self._next_claim[queue]:
                entries, cursor = self._work.autoclaim(
                    stream,
                    self._options.consumer,
                    self._visibility_ms,
                    free - taken,
                    self._claim_cursor[queue],
                )
                self._claim_cursor[queue] = cursor
                if cursor == "0-0":  # walked the whole pending list: rest a while
                    self._next_claim[queue] = now + self._options.visibility_timeout_s / 4
                if entries:
                    log.info(
                        "claimed %d run(s) of %s idle past the visibility timeout",
                        len(entries),
                        queue,
                    )
                taken += self._accept(stream, entries)
            if free - taken > 0:
                for _, entries in self._work.read(self._options.consumer, {stream: free - taken}):
                    taken += self._accept(stream, entries)
            if free - taken <= 0:
                break
        return taken

    def _accept(self, stream: str, entries: list[Entry]) -> int:
        """Hand entries to the runners; those whose run id already succeeded are acknowledged
        unrun."""
        if not entries:
            return 0
        queue = self._queue_of[stream]
        done = self._work.succeeded_already([fields.get("run_id", "") for _, fields in entries])
        for (entry_id, fields), already in zip(entries, done, strict=True):
            item = InFlight(queue, stream, entry_id, fields, fields.get("job", ""))
            if already and fields.get("run_id"):
                self._executor.duplicate(item)
                continue
            with self._cond:
                self._inflight[(stream, entry_id)] = item
            self._metrics.in_flight.labels(queue).inc()
            self._todo.put(item)
        return len(entries)

    def _promote(self, now: float) -> None:
        wait_s = RETRY_POLL_S
        for queue in self._options.queues:
            promoted = self._work.promote(queue)
            if promoted.moved == 100:
                wait_s = 0.0  # more are due at once
            elif promoted.next_due_ms is not None:
                wait_s = min(
                    wait_s, max(0.0, (promoted.next_due_ms - promoted.redis_now_ms) / 1000)
                )
        self._next_promote = now + wait_s

    def _retry_scheduled(self, delay_s: float) -> None:
        # Called from a runner: this worker promotes its own retry when due, without polling.
        self._next_promote = min(self._next_promote, time.monotonic() + delay_s)

    def _touch(self, idle_ms: int = 0) -> None:
        """Reset the idle time of our unfinished runs, so nobody claims a live one."""
        with self._cond:
            by_stream: dict[str, list[str]] = {}
            for (stream, entry_id), item in self._inflight.items():
                if not item.settled:
                    by_stream.setdefault(stream, []).append(entry_id)
        for stream, ids in by_stream.items():
            self._work.touch(stream, self._options.consumer, ids, idle_ms)

    def _show_figures(self) -> None:
        for queue, figures in self._work.figures(self._options.queues).items():
            self._metrics.retries_waiting.labels(queue).set(figures.retries_waiting)
            self._metrics.dead_letters.labels(queue).set(figures.dead_letters)
            self._metrics.oldest_waiting_age.labels(queue).set(figures.oldest_waiting_age_s)

    def _enforce_timeouts(self, now: float) -> None:
        with self._cond:
            late = [
                i for i in self._inflight.values() if i.deadline is not None and now > i.deadline
            ]
        for item in late:
            if not self._executor.timed_out(item):
                continue  # it finished just now
            self._forget(item)
            log.warning(
                "job %s ran past its timeout: given up on; its thread runs on until it returns, "
                "a new runner takes its place",
                item.job,
                extra={"run_id": item.fields.get("run_id")},
            )
            self._start_runner()

    # -- runners --------------------------------------------------------------------------------

    def _start_runner(self) -> None:
        thread = threading.Thread(target=self._runner, name="cronlease-runner", daemon=True)
        self._runners.append(thread)
        thread.start()

    def _runner(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                return
            if self._stop.is_set():
                self._todo.put(item)  # not started: _drain hands it over
                return
            try:
                self._executor.execute(item)
            except Exception:  # a bug of ours must not cost the worker a runner
                log.exception("worker: running entry %s of %s failed", item.entry_id, item.stream)
            self._forget(item)
            if item.abandoned:
                return  # timed out: a replacement runner took this one's place

    def _forget(self, item: InFlight) -> None:
        with self._cond:
            if self._inflight.pop((item.stream, item.entry_id), None) is not None:
                self._metrics.in_flight.labels(item.queue).dec()
            self._cond.notify_all()

    # -- stopping -------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Stop reading; hand the runs not started back at once; let running ones finish within
        the grace period; hand over what is still running then."""
        log.info(
            "stopping: no new runs; %d running, waiting up to %gs for them",
            len(self._inflight),
            self._options.grace_s,
        )
        self._hand_over(self._unstarted())
        deadline = time.monotonic() + self._options.grace_s
        with self._cond:
            while self._inflight and not self._hard_stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
                self._hand_over(self._unstarted())  # a runner put back what it got late
        with self._cond:
            unfinished = list(self._inflight.values())
        if unfinished:
            log.warning(
                "stopping: %d run(s) still running after the grace period: left for another "
                "worker, which claims them at once",
                len(unfinished),
            )
            self._hand_over(unfinished)
        for _ in self._runners:
            self._todo.put(None)
        for stream in self._streams.values():
            # A consumer left in the group holds nothing: it is only a name.
            with contextlib.suppress(*REDIS_ERRORS):
                self._work.forget_consumer(stream, self._options.consumer)
        log.info("stopped")

    def _unstarted(self) -> list[InFlight]:
        items: list[InFlight] = []
        while True:
            try:
                item = self._todo.get_nowait()
            except queues.Empty:
                return items
            if item is not None:
                items.append(item)

    def _hand_over(self, items: list[InFlight]) -> None:
        """Make runs claimable by any other worker now: their idle time set to the visibility
        timeout, as if this worker had died long ago."""
        by_stream: dict[str, list[str]] = {}
        for item in items:
            by_stream.setdefault(item.stream, []).append(item.entry_id)
        for stream, ids in by_stream.items():
            try:
                self._work.touch(stream, self._options.consumer, ids, self._visibility_ms)
            except REDIS_ERRORS as error:
                log.warning(
                    "could not hand %d run(s) over (%s): claimed after the visibility timeout",
                    len(ids),
                    error,
                )
        for item in items:
            if item.started is None:
                self._forget(item)
