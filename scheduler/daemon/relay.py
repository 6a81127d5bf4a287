"""The leader's outbox relay: runs of relayed queues, from their outbox stream to the target.

One thread per relayed queue (a target that is down must not hold up another's), started when
this replica starts leading and stopped when it stops. Each turn: the runs this replica read
before and did not acknowledge, else runs a dead or demoted leader left pending (claimed once
idle longer than a lease), else new ones; the queue's Deliverer writes them in order and says
how many the target confirmed durably; only those are acknowledged (store/outbox.py trims
below the oldest unacknowledged run). A target that is down is retried with exponential
backoff and jitter, loudly; its outbox grows meanwhile (the outbox gauges and the
CronleaseOutboxBacklog alert show it) and nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timezone
from typing import Any

from redis import Redis

from scheduler.core.queues import QueueSpec
from scheduler.core.schedule import Config
from scheduler.core.timefmt import parse_instant
from scheduler.ops.metrics import Metrics
from scheduler.store.connection import REDIS_ERRORS, Backoff, Connector, ErrorEpisodes, redact
from scheduler.store.keys import Keys
from scheduler.store.lease import LeaseTiming
from scheduler.store.outbox import Outbox, OutboxEntry
from scheduler.targets.relay.base import Deliverer, OutboxRun, TargetUnavailable
from scheduler.targets.relay.registry import deliverer_for
from scheduler.targets.relay.secrets import SecretMissing

log = logging.getLogger("scheduler.relay")

BATCH = 100
BLOCK_MS = 200
RETRY_CAP_S = 30.0
FIGURES_EVERY_S = 5.0


class Relay:
    """Every relayed queue's relay thread, run while this replica leads."""

    def __init__(
        self,
        client_factory: Callable[[str], Redis],
        keys: Keys,
        replica_id: str,
        metrics: Metrics,
        lease_valid: Callable[[], bool],
        claim_idle_ms: int,
        make_deliverer: Callable[[QueueSpec, int], Deliverer] = deliverer_for,
    ) -> None:
        self._client_factory = client_factory
        self._keys = keys
        self._replica_id = replica_id
        self._metrics = metrics
        self._lease_valid = lease_valid
        self._claim_idle_ms = claim_idle_ms
        self._make_deliverer = make_deliverer
        self._specs: dict[str, tuple[QueueSpec, int]] = {}
        self._threads: dict[str, _QueueRelay] = {}
        self._leading = False

    @classmethod
    def for_daemon(
        cls,
        connector: Connector,
        keys: Keys,
        replica_id: str,
        metrics: Metrics,
        timing: LeaseTiming,
        lease_valid: Callable[[], bool],
    ) -> Relay:
        # The relay blocks on its outbox for BLOCK_MS: its clients wait that long plus a call.
        timeout_s = BLOCK_MS / 1000 + max(0.5, timing.socket_timeout_s)
        return cls(
            lambda name: connector(timeout_s, name),
            keys,
            replica_id,
            metrics,
            lease_valid,
            # A dead leader's pending runs are claimed once idle for a lease and a bit: it
            # stopped delivering by then (its lease lapsed by its own clock).
            claim_idle_ms=int(timing.ttl_s * 1000) + 500,
        )

    def configure(self, config: Config) -> None:
        """The relayed queues of a (re)loaded config, each with its schedules' longest catch-up
        window (a target's dedup window should cover it); a queue whose spec changed gets a
        new thread (and a new connection)."""
        specs = {q: spec for q, spec in config.queues.items() if spec.relayed}
        windows: dict[str, int] = {}
        for schedule in config.schedules:
            if schedule.queue in specs:
                windows[schedule.queue] = max(
                    windows.get(schedule.queue, 0), schedule.catchup_window_s
                )
        wanted = {q: (spec, windows.get(q, 3600)) for q, spec in specs.items()}
        changed = {q for q, value in self._specs.items() if wanted.get(q) != value}
        self._specs = wanted
        if self._leading:
            for queue in changed:
                self._stop_one(queue)
            self._start_missing()

    def lead(self) -> None:
        self._leading = True
        self._start_missing()

    def stand_down(self) -> None:
        self._leading = False
        for queue in list(self._threads):
            self._stop_one(queue)

    def _start_missing(self) -> None:
        for queue, (spec, window) in self._specs.items():
            if queue not in self._threads:
                thread = _QueueRelay(self, spec, window)
                self._threads[queue] = thread
                thread.start()

    def _stop_one(self, queue: str) -> None:
        thread = self._threads.pop(queue, None)
        if thread is not None:
            thread.stop()


class _QueueRelay(threading.Thread):
    def __init__(self, owner: Relay, spec: QueueSpec, window_s: int) -> None:
        super().__init__(name=f"relay-{spec.queue}", daemon=True)
        self._owner = owner
        self._spec = spec
        self._window_s = window_s
        self._stopping = threading.Event()
        self._deliverer: Deliverer | None = None
        self._errors = ErrorEpisodes(f"relay of queue {spec.queue!r}")
        self._backoff = Backoff(base_s=0.2, cap_s=RETRY_CAP_S)
        self._figures_due = 0.0

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        queue = self._spec.queue
        owner = self._owner
        metrics = owner._metrics
        client = owner._client_factory(f"cronlease-{owner._replica_id}-relay")
        outbox = Outbox(client, owner._keys.outbox(queue), owner._replica_id)
        grouped = False
        metrics.relay.start(queue)
        try:
            while not self._stopping.is_set() and owner._lease_valid():
                try:
                    if not grouped:
                        outbox.ensure_group()
                        grouped = True
                    self._show_figures(client, outbox)
                    runs, again = self._next_runs(outbox)
                    if runs and owner._lease_valid():
                        self._deliver(outbox, runs, again)
                except REDIS_ERRORS as error:
                    self._errors.failed(error)
                    self._pause(self._backoff.next_delay(2.0))
                except Exception:  # a deliverer's bug must not end the relay: runs would wait
                    log.exception("relay of queue %r: unexpected error; retrying", queue)
                    self._drop_deliverer()
                    self._pause(self._backoff.next_delay())
        finally:
            if self._deliverer is not None:
                _close(self._deliverer)
            client.close()
            metrics.relay.clear(queue)

    def _next_runs(self, outbox: Outbox) -> tuple[list[OutboxEntry], bool]:
        """(runs, whether they may have reached the target before): own pending first, then a
        dead leader's, then new ones."""
        runs = outbox.own_pending(BATCH)
        if runs:
            return runs, True
        runs = outbox.claim_stale(BATCH, self._owner._claim_idle_ms)
        if runs:
            return runs, True
        return outbox.read_new(BATCH, BLOCK_MS), False

    def _deliver(self, outbox: Outbox, entries: list[OutboxEntry], again: bool) -> None:
        queue = self._spec.queue
        metrics = self._owner._metrics
        runs = [OutboxRun(e.entry_id, e.fields) for e in entries]
        try:
            deliverer = self._open()
            result = deliverer.deliver(runs)
        except (TargetUnavailable, SecretMissing, OSError) as error:
            self._failed(f"{type(error).__name__}: {error}", len(runs))
            self._drop_deliverer()
            return
        confirmed = entries[: result.confirmed]
        outbox.acknowledge([e.entry_id for e in confirmed])
        self._errors.recovered()
        if confirmed:
            now = time.time()
            metrics.relay.delivered.labels(queue).inc(len(confirmed))
            if result.duplicates:
                metrics.relay.duplicates.labels(queue).inc(result.duplicates)
            if again:
                metrics.relay.redelivered.labels(queue).inc(len(confirmed))
                # Logged too: a killed replica's counters die with it, its log does not.
                log.info(
                    "relay of queue %r: %d runs delivered again (an earlier attempt may have "
                    "reached the target; %d of them it already had)",
                    queue,
                    len(confirmed),
                    result.duplicates,
                    extra={"event": "relay_redelivered"},
                )
            for entry in confirmed:
                metrics.relay.lag.labels(queue).observe(max(0.0, now - _enqueued_at(entry)))
        if result.error is not None:
            self._failed(result.error, len(runs) - len(confirmed))
        else:
            self._backoff.reset()

    def _drop_deliverer(self) -> None:
        """Close the connection: the next attempt opens a new one."""
        if self._deliverer is not None:
            _close(self._deliverer)
            self._deliverer = None

    def _open(self) -> Deliverer:
        if self._deliverer is None:
            deliverer = self._owner._make_deliverer(self._spec, self._window_s)
            try:
                warnings = deliverer.open()
            except BaseException:
                _close(deliverer)
                raise
            for warning in warnings:
                log.warning("queue %r: %s", self._spec.queue, warning)
            self._deliverer = deliverer
            log.info("relay of queue %r: connected to %s", self._spec.queue, self._where())
        return self._deliverer

    def _failed(self, why: str, runs: int) -> None:
        queue = self._spec.queue
        metrics = self._owner._metrics
        metrics.relay.failed.labels(queue).inc()
        metrics.relay.retried.labels(queue).inc(runs)
        delay = self._backoff.next_delay()
        log.warning(
            "relay of queue %r: %s could not take %d runs (%s); they stay in the outbox, "
            "retried in %.1fs",
            queue,
            self._where(),
            runs,
            why,
            delay,
            extra={"event": "relay_failed"},
        )
        self._pause(delay)

    def _where(self) -> str:
        url = self._spec.options.get("url") or f"url_file {self._spec.options.get('url_file')}"
        return f"{self._spec.target} at {redact(str(url))}"

    def _show_figures(self, client: Redis, outbox: Outbox) -> None:
        now = time.monotonic()
        if now < self._figures_due:
            return
        self._figures_due = now + FIGURES_EVERY_S
        seconds, micros = client.time()
        figures = outbox.figures(int(seconds) + int(micros) / 1e6)
        self._owner._metrics.relay.show(
            self._spec.queue, figures.length, figures.waiting, figures.oldest_age_s
        )

    def _pause(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _enqueued_at(entry: OutboxEntry) -> float:
    try:
        return parse_instant(entry.fields.get("enqueued_at", ""), timezone.utc).timestamp()
    except ValueError:
        return time.time()


def _close(deliverer: Any) -> None:
    try:
        deliverer.close()
    except Exception as error:  # closing a broken connection: nothing left to save
        log.debug("closing a deliverer: %s", error)
