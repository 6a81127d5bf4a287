"""The main loop: campaign for the lease, lead or follow, take reloads, stop cleanly.

One thread does all the scheduling work, so "in flight" has a plain meaning: a batch is written
and its outcome settled before the loop looks at the stop flag again. Other threads only listen
for notices (handovers, operator events) and serve HTTP; they wake or read the main loop, never
drive it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from redis import Redis

from scheduler.core.schedule import Config, ConfigError
from scheduler.core.ticker import Ticker
from scheduler.core.timefmt import rfc3339_utc
from scheduler.daemon.configload import ConfigLoader
from scheduler.daemon.events import EventLog
from scheduler.daemon.farewell import release_and_leave
from scheduler.daemon.handover import NoticeListener
from scheduler.daemon.heartbeat import Heartbeat
from scheduler.daemon.relay import Relay
from scheduler.daemon.renewal import Renewer
from scheduler.daemon.takeover import FencedError, abandon_lease, take_over
from scheduler.daemon.writer import WAKE_PAD_S, BatchWriter
from scheduler.ops import failpoints
from scheduler.ops.configwatch import ConfigWatch
from scheduler.ops.metrics import Metrics
from scheduler.ops.sdnotify import Notifier
from scheduler.store.clock import RedisClock
from scheduler.store.connection import (
    REDIS_ERRORS,
    Backoff,
    Connector,
    ErrorEpisodes,
    client_db,
    is_cluster,
)
from scheduler.store.durability import Durability
from scheduler.store.keys import Keys
from scheduler.store.lease import LeaseKeeper, LeaseTiming
from scheduler.store.queuestats import QueueStats
from scheduler.store.scripts import Scripts
from scheduler.store.serverchecks import warn_about_server
from scheduler.targets.router import RoutedTarget

log = logging.getLogger("scheduler.daemon")  # the name operators grep for, as before the split


class Daemon:
    def __init__(
        self,
        config: Config,
        connector: Connector,
        keys: Keys,
        replica_id: str,
        timing: LeaseTiming,
        metrics: Metrics,
        revive: Callable[[], object] | None = None,
        notifier: Notifier | None = None,
        durability: Durability | None = None,
    ) -> None:
        self.config = config
        self.keys = keys
        self.replica_id = replica_id
        self.timing = timing
        self.metrics = metrics
        # Called when Redis cannot be reached: the embedded mode restarts its server here.
        self._revive = revive
        self.notifier = notifier or Notifier.from_environment()
        self._connect = connector
        self.client_name = f"cronlease-{replica_id}"
        self.client: Redis = connector(timing.socket_timeout_s, self.client_name)
        self.scripts = Scripts(self.client, keys)
        self.clock = RedisClock()
        # --redis-wait-replicas (scheduler/durability.py): lease and enqueue writes count only
        # once enough replicas acknowledge them.
        self.durability = durability
        confirm = None if durability is None else durability.confirmer(self.client)
        self.lease = LeaseKeeper(self.scripts, replica_id, timing, self.clock, confirm)
        self.ticker = Ticker(config.schedules)
        self.writer = BatchWriter(
            self.ticker,
            RoutedTarget(
                self.scripts, keys, config.queues, client_db(self.client), is_cluster(self.client)
            ),
            self.lease,
            self.clock,
            self.scripts,
            keys,
            metrics,
            self.client,
            durability,
            timing.ttl_s,
        )
        self.relay = Relay.for_daemon(
            connector,
            keys,
            replica_id,
            metrics,
            timing,
            lambda: self._leading and self.lease.valid(),
        )
        queue_stats = QueueStats(self.client, keys)
        self.writer.on_targets = queue_stats.set_targets
        self.heartbeat = Heartbeat(self.scripts, queue_stats, metrics, replica_id, timing)
        self._watch = ConfigWatch(config.source)
        self._reload_requested = False
        self._loader = ConfigLoader(metrics, on_loaded=lambda: self._wake.set())
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._errors = ErrorEpisodes("redis")
        self._backoff = Backoff(cap_s=min(2.0, timing.ttl_s / 2))
        self._checked_server = False
        self._redis_ok = False
        self._ready_notified = False
        # Whether this loop acts as leader; the renewal thread may drop the lease under it, and
        # the loop then demotes (metrics, prepared batch) on its next turn.
        self._leading = False
        self._leading_token: int | None = None
        self._leading_event = threading.Event()
        self._loop_turned_mono = time.monotonic()
        self._show_config(config)

    # -- control (any thread or a signal handler) -------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self.stopping and not self._reload_requested:
            self._wake.wait(seconds)
        self._wake.clear()

    # -- probes (HTTP thread) ---------------------------------------------------------------

    @property
    def health_threshold_s(self) -> float:
        # The loop turns at least every TTL/3 (or a Redis timeout plus a backoff): 3 TTLs of
        # silence means it is wedged, and only a restart helps.
        return 3 * self.timing.ttl_s

    def health(self) -> tuple[bool, str]:
        idle = time.monotonic() - self._loop_turned_mono
        if idle > self.health_threshold_s:
            return False, f"main loop stuck for {idle:.1f}s"
        return True, f"ok: main loop turned {idle:.2f}s ago"

    def ready(self) -> tuple[bool, str]:
        if not self._redis_ok:
            return False, "Redis not reachable"
        role = "leader" if self._leading else "follower"
        return True, f"ok: {role}, config {self.config.digest}"

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> int:
        events = EventLog(lambda: self._leading_token if self._leading else None)
        handlers = {self.keys.handover: self._on_handover, self.keys.events: events.on_notice}
        NoticeListener(
            self._connect, self.client_name, handlers, self.timing, self._stopping
        ).start()
        Renewer(
            self.lease,
            self.metrics,
            self._stopping,
            self._leading_event,
            lambda: time.monotonic() - self._loop_turned_mono,
            self.health_threshold_s,
            self._wake.set,
        ).start()
        while not self.stopping:
            self._turn()
            if self._reload_requested or self._watch.changed(time.monotonic()):
                self._reload_requested = False
                self._start_reload()
            loaded = self._loader.take()
            if isinstance(loaded, ConfigError):
                self._loader.report(loaded, self.config.digest)
                self.notifier.ready()
            elif loaded is not None:
                self._reload(loaded)
            try:
                if self._leading and not self.lease.held:
                    self._demote(self.lease.not_renewed_because or "the lease was lost")
                elif self._leading and not self.lease.valid():
                    self._demote("no successful renewal before the lease deadline")
                elif self._leading:
                    self._lead_once()
                else:
                    self._follow_once()
                self._errors.recovered()
                self._backoff.reset()
                self._redis_ok = True
            except REDIS_ERRORS as error:
                self._redis_ok = False
                kind = self._errors.failed(error)
                self.metrics.redis_errors.labels(kind).inc()
                if kind == "connection" and self._revive is not None:
                    self._try_revive()
                if self._leading and not self.lease.valid():
                    self._demote("no successful renewal before the lease deadline")
                self.notifier.status(f"waiting for Redis ({kind})")
                cap = self.timing.renew_interval_s / 2 if self._leading else None
                self._sleep(self._backoff.next_delay(cap))
        self._shutdown()
        return 0

    def _turn(self) -> None:
        failpoints.hit("main-loop")
        self._loop_turned_mono = time.monotonic()
        self.metrics.loop_last_turn.set(time.time())
        self.notifier.watchdog()

    def _follow_once(self) -> None:
        # Before the acquire: nothing between acquiring and leading may fail unhandled.
        if not self._checked_server:
            warn_about_server(self.client)
            self._checked_server = True
        result = self.lease.try_acquire()
        if result.data_lost:
            log.error(
                "Redis LOST ITS DATA: the generation marker changed (a restart without "
                "persistence?). Cursors and queued runs are gone; schedules restart from now. "
                "Enable appendonly to keep exactly-once across Redis restarts.",
                extra={"event": "data_lost"},
            )
        if result.acquired:
            self._promote()
            return
        self._heartbeat_if_due()
        self._notify_ready()
        self.notifier.status(f"following; the lease expires in {result.retry_in_s:.1f}s")
        # Sleep until the holder's lease would expire, or a handover notice wakes us.
        self._sleep(min(result.retry_in_s + WAKE_PAD_S, self.timing.renew_interval_s))

    def _promote(self) -> None:
        """Lead on a freshly acquired lease, all or nothing: every Redis step of taking over
        (cursors read, unseen schedules' cursors recorded, leader info) is done before this
        replica calls itself leader; if one fails, the lease is given back at once."""
        lease = self.lease.lease
        assert lease is not None
        try:
            taken = take_over(
                self.client,
                self.keys,
                self.scripts,
                self.ticker,
                lease,
                self.clock.now(),
                self.replica_id,
                self.config.digest,
            )
        except FencedError as error:
            abandon_lease(self.lease, error)
            return
        except BaseException as error:
            abandon_lease(self.lease, error)
            raise
        self.writer.reset()
        self._leading = True
        self._leading_token = lease.token
        self._leading_event.set()
        self.relay.lead()
        self.metrics.leader.set(1)
        self.metrics.lease_token.set(lease.token)
        self.metrics.leader_changes.labels("elected").inc()
        self.heartbeat.soon()
        self.writer.update_next_fires(s.name for s in self.config.schedules)
        log.info(
            "leading with fencing token %d (%d schedules, %d with a cursor)",
            lease.token,
            len(self.config.schedules),
            taken.with_cursor,
            extra={"token": lease.token, "event": "elected"},
        )
        self._notify_ready()
        self.notifier.status(
            f"leading since {rfc3339_utc(int(taken.now))} with token {lease.token}"
        )

    def _demote(self, why: str, event: str = "demoted") -> None:
        self.writer.reset()  # the ticker starts afresh from Redis's cursors on re-election
        self._leading = False
        self.relay.stand_down()
        self._leading_event.clear()
        token = self._leading_token
        self.lease.drop()
        self.metrics.leader.set(0)
        self.metrics.lease_token.set(0)
        self.metrics.leader_changes.labels(event).inc()
        # Only a leader knows when schedules fire next; a follower's figures would go stale.
        self.metrics.next_fire.clear()
        self.metrics.last_fire.clear()
        self.heartbeat.follow()
        log.warning("no longer leading: %s", why, extra={"token": token, "event": event})
        self.notifier.status(f"following: {why}")

    def _lead_once(self) -> None:
        demotion = self.writer.turn()
        if demotion is not None:
            self._demote(demotion.why, demotion.event)
            return
        self._heartbeat_if_due()
        # The deadline wake-up makes the loop notice a lapsed lease even with nothing due.
        wake_in = min(self.lease.time_left_s(), self.heartbeat.due_in_s())
        self._sleep(min(wake_in, self.writer.wake_in_s()))

    # -- heartbeat, reload ------------------------------------------------------------------

    def _heartbeat_if_due(self) -> None:
        lease = self.lease.lease
        self.heartbeat.beat_if_due(self.config, lease.value if lease else "")

    def _start_reload(self) -> None:
        if self._loader.start(self.config.source):
            self.notifier.reloading()

    def _reload(self, new: Config) -> None:
        if self._loader.again():
            self._start_reload()
        if new.digest == self.config.digest:
            log.info("config file touched but unchanged (hash %s)", new.digest)
            self.notifier.ready()
            return
        leading = self._leading and self.clock.synced
        self.writer.drop_prepared()
        changes = self.ticker.reconfigure(new.schedules, self.clock.now() if leading else 0.0)
        old_digest = self.config.digest
        self.config = new
        self._show_config(new)
        log.info(
            "config reloaded: hash %s -> %s; added %s, removed %s, changed %s",
            old_digest,
            new.digest,
            list(changes.added) or "none",
            list(changes.removed) or "none",
            list(changes.changed) or "none",
            extra={"event": "reloaded"},
        )
        if leading:
            # Recorded before the next write (retried until Redis confirms).
            self.writer.record(changes.restarted, forget=changes.removed)
            self.writer.update_next_fires(s.name for s in new.schedules)
            self.heartbeat.soon()
            if changes.removed and self.lease.lease is not None:
                try:
                    self.scripts.forget(self.lease.lease.value, changes.removed)
                except REDIS_ERRORS as error:
                    log.warning("could not clear the cursors of removed schedules: %s", error)
        self.notifier.ready()

    def _show_config(self, config: Config) -> None:
        self.writer.configure(config)
        self.relay.configure(config)
        self.metrics.show_config(config)

    def _notify_ready(self) -> None:
        if not self._ready_notified:
            self._ready_notified = True
            self.notifier.ready()

    # -- stop -------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.notifier.stopping()
        self.writer.reset("stopping")  # the summary of what the last line did not show
        self._leading = False
        self.relay.stand_down()
        release_and_leave(self.lease, self.scripts, self.metrics, self.replica_id)
        log.info("stopped")
        self.client.close()

    # -- helpers ----------------------------------------------------------------------------

    def _on_handover(self, notice: object) -> None:
        if not self._leading:
            log.debug("handover notice: %s", notice)
            self._wake.set()

    def _try_revive(self) -> None:
        assert self._revive is not None
        try:
            self._revive()
        except (RuntimeError, OSError) as error:
            log.warning("could not restart the embedded Redis: %s", error)
