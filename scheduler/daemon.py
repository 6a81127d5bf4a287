"""`cronlease run`: campaign for the lease, lead (tick and enqueue) or follow, stop cleanly.

One thread does all the scheduling work, so "in flight" has a plain meaning: a batch is written
and its outcome settled before the loop looks at the stop flag again. Other threads only listen
for handover notices and serve HTTP; they wake or read the main loop, never drive it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType

import redis
from redis import Redis

from scheduler import __version__, failpoints
from scheduler.clock import RedisClock
from scheduler.config import Config, ConfigError, load_config
from scheduler.configwatch import ConfigWatch
from scheduler.keys import Keys
from scheduler.lease import LeaseKeeper, LeaseTiming
from scheduler.metrics import Metrics
from scheduler.queuestats import QueueStats
from scheduler.redisconn import Backoff, Connector, ErrorEpisodes
from scheduler.scripts import Scripts
from scheduler.sdnotify import Notifier
from scheduler.targets import DueFire, Outcome, Target, Trigger
from scheduler.targets.stream import StreamTarget, run_id
from scheduler.ticker import Batch, Ticker
from scheduler.timefmt import rfc3339_utc, rfc3339_utc_ms
from scheduler.timeline import jitter_ms

log = logging.getLogger(__name__)

# Wake a little after a fire is due: absorbs the error in the Redis clock estimate.
WAKE_PAD_S = 0.002
MIN_REDIS_VERSION = (6, 2)
# Replicas silent for this many lease TTLs drop out of the heartbeat set.
FORGET_REPLICA_TTLS = 30


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
        self.lease = LeaseKeeper(self.scripts, replica_id, timing, self.clock)
        self.target: Target = StreamTarget(self.scripts, keys)
        self.ticker = Ticker(config.schedules)
        self.queue_stats = QueueStats(self.client, keys, metrics)
        self.paused: frozenset[str] = frozenset()
        self._watch = ConfigWatch(config.source)
        self._reload_requested = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._errors = ErrorEpisodes("redis")
        self._backoff = Backoff(cap_s=min(2.0, timing.ttl_s / 2))
        self._checked_server = False
        self._redis_ok = False
        self._ready_notified = False
        self._next_heartbeat_mono = 0.0
        self._loop_turned_mono = time.monotonic()
        self._started_at = time.time()
        self._show_config(config)
        metrics.last_reload_success.set(1)  # the start-up load is the first successful one
        metrics.last_reload_time.set(self._started_at)

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
        role = "leader" if self.lease.held else "follower"
        return True, f"ok: {role}, config {self.config.digest}"

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> int:
        listener = threading.Thread(target=self._listen_for_handover, daemon=True)
        listener.start()
        while not self.stopping:
            self._turn()
            if self._reload_requested or self._watch.changed(time.monotonic()):
                self._reload_requested = False
                self._reload()
            try:
                if self.lease.held:
                    self._lead_once()
                else:
                    self._follow_once()
                self._errors.recovered()
                self._backoff.reset()
                self._redis_ok = True
            except redis.RedisError as error:
                self._redis_ok = False
                kind = self._errors.failed(error)
                self.metrics.redis_errors.labels(kind).inc()
                if kind == "connection" and self._revive is not None:
                    self._try_revive()
                if self.lease.held and not self.lease.valid():
                    self._demote("no successful renewal before the lease deadline")
                self.notifier.status(f"waiting for Redis ({kind})")
                cap = self.timing.renew_interval_s / 2 if self.lease.held else None
                self._sleep(self._backoff.next_delay(cap))
        self._shutdown()
        return 0

    def _turn(self) -> None:
        failpoints.hit("main-loop")
        self._loop_turned_mono = time.monotonic()
        self.metrics.loop_last_turn.set(time.time())
        self.notifier.watchdog()

    def _follow_once(self) -> None:
        result = self.lease.try_acquire()
        if not self._checked_server:
            self._check_server()
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
        lease = self.lease.lease
        assert lease is not None
        raw: dict[str, str] = self.client.hgetall(self.keys.cursor)  # type: ignore[assignment]
        cursors = {name: int(ts) for name, ts in raw.items()}
        now = self.clock.now()
        self.ticker.start(cursors, now)
        self.scripts.leader_info(lease.value, lease.token, self.replica_id, now, self.config.digest)
        self.metrics.leader.set(1)
        self.metrics.lease_token.set(lease.token)
        self.metrics.leader_changes.labels("elected").inc()
        self._next_heartbeat_mono = 0.0
        self._update_next_fires(s.name for s in self.config.schedules)
        log.info(
            "leading with fencing token %d (%d schedules, %d with a cursor)",
            lease.token,
            len(self.config.schedules),
            len(cursors),
            extra={"token": lease.token, "event": "elected"},
        )
        self._notify_ready()
        self.notifier.status(f"leading since {rfc3339_utc(int(now))} with token {lease.token}")

    def _demote(self, why: str, event: str = "demoted") -> None:
        token = self.lease.lease.token if self.lease.lease else None
        self.lease.drop()
        self.metrics.leader.set(0)
        self.metrics.lease_token.set(0)
        self.metrics.leader_changes.labels(event).inc()
        # Only a leader knows when schedules fire next; a follower's figures would go stale.
        self.metrics.next_fire.clear()
        self.metrics.last_fire.clear()
        self.queue_stats.clear()
        log.warning("no longer leading: %s", why, extra={"token": token, "event": event})
        self.notifier.status(f"following: {why}")

    def _lead_once(self) -> None:
        if time.monotonic() >= self.lease.next_renew_mono:
            started = time.monotonic()
            try:
                renewed = self.lease.renew()
            except redis.RedisError:
                self.metrics.lease_renewals.labels("error").inc()
                raise
            self.metrics.lease_renewal_duration.observe(time.monotonic() - started)
            self.metrics.lease_renewals.labels("ok" if renewed else "lost").inc()
            if not renewed:
                self._demote("another replica holds the lease")
                return
        if not self.lease.valid():
            self._demote("no successful renewal before the lease deadline")
            return
        batch = self.ticker.due(self.clock.now())
        self._count_unwritten(batch)
        if batch.fires:
            self._write(batch.fires)
        else:
            self.ticker.settle()
        if not self.lease.held:
            return
        self._heartbeat_if_due()
        wake_in = self.lease.next_renew_mono - time.monotonic()
        wake_in = min(wake_in, self._next_heartbeat_mono - time.monotonic())
        next_due = self.ticker.next_due()
        if next_due is not None:
            wake_in = min(wake_in, next_due - self.clock.now() + WAKE_PAD_S)
        self._sleep(wake_in)

    def _count_unwritten(self, batch: Batch) -> None:
        for name, count in batch.misfired.items():
            self.metrics.occurrence(name, "misfired", count=count)
            log.warning(
                "dropped %d missed runs (older than the catch-up window or by policy)",
                count,
                extra={"schedule": name, "event": "misfire"},
            )
        for name, count in batch.disabled.items():
            self.metrics.occurrence(name, "skipped", "disabled", count)
        if batch.misfired or batch.disabled:
            self._update_next_fires({*batch.misfired, *batch.disabled})

    def _write(self, fires: list[DueFire]) -> None:
        lease = self.lease.lease
        if lease is None or not self.lease.valid():
            self.ticker.requeue()
            self._demote("the lease deadline passed before the batch was sent")
            return
        # A freeze here, between the deadline check and the write, is what fencing is for.
        failpoints.hit("before-enqueue")
        now = self.clock.now()
        try:
            outcomes = self.target.enqueue(lease, fires, rfc3339_utc_ms(now))
        except redis.RedisError:
            self.ticker.requeue()
            raise
        if Outcome.FENCED in outcomes:
            self.ticker.requeue()
            for fire in fires:
                self.metrics.occurrence(fire.schedule.name, "fenced")
            log.error(
                "write FENCED: the lease is no longer ours; nothing was written",
                extra={"token": lease.token, "event": "fenced"},
            )
            self._demote("fenced by the enqueue script", event="fenced")
            return
        self.ticker.settle()
        touched: set[str] = set()
        for fire, outcome in zip(fires, outcomes, strict=True):
            name = fire.schedule.name
            touched.add(name)
            if outcome is Outcome.ENQUEUED:
                caught_up = fire.trigger is Trigger.CATCHUP
                self.metrics.occurrence(name, "caught_up" if caught_up else "enqueued")
                self.metrics.lag.observe(max(0.0, now - fire.fire_ts))
                if self.metrics.per_schedule:
                    self.metrics.last_fire.labels(name).set(fire.fire_ts)
            elif outcome is Outcome.DUPLICATE:
                self.metrics.occurrence(name, "deduplicated")
            else:
                self.metrics.occurrence(name, "skipped", "paused")
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s (%s)",
                    outcome.value,
                    fire.trigger.value,
                    extra={
                        "schedule": name,
                        "run_id": run_id(name, rfc3339_utc(fire.fire_ts)),
                        "token": lease.token,
                    },
                )
        self._update_next_fires(touched)

    def _update_next_fires(self, names: Iterable[str]) -> None:
        if not self.metrics.per_schedule or not self.lease.held:
            return
        for name in names:
            fire = self.ticker.next_fire_of(name)
            if fire is not None:
                # When it will be enqueued (jitter included), so "overdue" means late.
                jitter_s = jitter_ms(name, fire, self._jitter_s.get(name, 0)) / 1000
                self.metrics.next_fire.labels(name).set(fire + jitter_s)
            else:
                with contextlib.suppress(KeyError):  # a finished one-shot: no next fire
                    self.metrics.next_fire.remove(name)

    # -- heartbeat, reload ------------------------------------------------------------------

    def _heartbeat_if_due(self) -> None:
        now_mono = time.monotonic()
        if now_mono < self._next_heartbeat_mono:
            return
        self._next_heartbeat_mono = now_mono + self.timing.renew_interval_s
        lease_value = self.lease.lease.value if self.lease.lease else ""
        info = {
            "role": "leader" if lease_value else "follower",
            "config_hash": self.config.digest,
            "version": __version__,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": round(self._started_at, 3),
            "lease_ttl_s": self.timing.ttl_s,
        }
        reply = self.scripts.heartbeat(
            self.replica_id,
            json.dumps(info, separators=(",", ":")),
            lease_value,
            self.config.digest,
            int(FORGET_REPLICA_TTLS * self.timing.ttl_s * 1000),
        )
        drift = bool(reply.leader_value) and reply.leader_config_hash not in (
            "",
            self.config.digest,
        )
        self.metrics.config_drift.set(1 if drift else 0)
        if reply.paused != self.paused:
            self.paused = reply.paused
            if self.metrics.per_schedule:
                for schedule in self.config.schedules:
                    self.metrics.paused.labels(schedule.name).set(schedule.name in reply.paused)
        if lease_value:
            self.queue_stats.refresh({s.queue for s in self.config.schedules}, reply.redis_time_s)

    def _reload(self) -> None:
        self.notifier.reloading()
        self.metrics.last_reload_time.set(time.time())
        try:
            new = load_config(self.config.source)
        except ConfigError as error:
            self.metrics.reloads.labels("failure").inc()
            self.metrics.last_reload_success.set(0)
            log.error(
                "config reload FAILED; the running config (hash %s) stays in force:\n%s",
                self.config.digest,
                "\n".join(error.lines()),
                extra={"event": "reload_failed"},
            )
            self.notifier.ready()
            return
        self.metrics.reloads.labels("success").inc()
        self.metrics.last_reload_success.set(1)
        if new.digest == self.config.digest:
            log.info("config file touched but unchanged (hash %s)", new.digest)
            self.notifier.ready()
            return
        leading = self.lease.held and self.clock.synced
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
            self._update_next_fires(s.name for s in new.schedules)
            self._next_heartbeat_mono = 0.0
            if changes.removed and self.lease.lease is not None:
                try:
                    self.scripts.forget(self.lease.lease.value, changes.removed)
                except redis.RedisError as error:
                    log.warning("could not clear the cursors of removed schedules: %s", error)
        self.notifier.ready()

    def _show_config(self, config: Config) -> None:
        self.metrics.config_info.clear()
        self.metrics.config_info.labels(config.digest).set(1)
        intervals = {s.name: s.timeline.shortest_interval_s or 0 for s in config.schedules}
        self._jitter_s = {s.name: s.jitter_s for s in config.schedules if s.jitter_s}
        self.metrics.set_schedules([s.name for s in config.schedules], intervals)
        enabled = sum(1 for s in config.schedules if s.enabled)
        self.metrics.schedules.labels("enabled").set(enabled)
        self.metrics.schedules.labels("disabled").set(len(config.schedules) - enabled)

    def _notify_ready(self) -> None:
        if not self._ready_notified:
            self._ready_notified = True
            self.notifier.ready()

    # -- stop -------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.notifier.stopping()
        if self.lease.held:
            token = self.lease.lease.token if self.lease.lease else None
            try:
                released = self.lease.release()
                self.metrics.leader_changes.labels("released").inc()
                log.info(
                    "released the lease (%s); followers were told to take over",
                    "ok" if released else "it was no longer ours",
                    extra={"token": token, "event": "released"},
                )
            except redis.RedisError as error:
                log.warning("could not release the lease (%s); it expires on its own", error)
            self.metrics.leader.set(0)
        log.info("stopped")
        self.client.close()

    # -- helpers ----------------------------------------------------------------------------

    def _listen_for_handover(self) -> None:
        backoff = Backoff(cap_s=self.timing.renew_interval_s)
        while not self.stopping:
            try:
                # Same name as the main client: both are this replica's own connections.
                client = self._connect(30.0, self.client_name)
                pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(self.keys.handover)
                backoff.reset()
                while not self.stopping:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and not self.lease.held:
                        log.debug("handover notice: %s", message.get("data"))
                        self._wake.set()
            except redis.RedisError:
                # The main loop reports Redis trouble; here we only retry quietly.
                self._stopping.wait(backoff.next_delay())

    def _try_revive(self) -> None:
        assert self._revive is not None
        try:
            self._revive()
        except (RuntimeError, OSError) as error:
            log.warning("could not restart the embedded Redis: %s", error)

    def _check_server(self) -> None:
        """Start-up warnings about Redis settings that undermine exactly-once."""
        self._checked_server = True
        try:
            info = self.client.info("server")
            version = tuple(int(p) for p in str(info.get("redis_version", "0.0")).split(".")[:2])
            if version < MIN_REDIS_VERSION:
                log.warning("Redis %s is older than 6.2; cronlease is tested on 6.2+", version)
        except redis.exceptions.NoPermissionError:
            log.warning("cannot run INFO (NOPERM); skipping the Redis version check")
        try:
            policy = self.client.config_get("maxmemory-policy").get("maxmemory-policy")
            if policy and policy != "noeviction":
                log.warning(
                    "Redis maxmemory-policy is %s: eviction can delete the cursor and the lease; "
                    "set maxmemory-policy noeviction",
                    policy,
                )
            persistence = self.client.config_get("appendonly")
            save = self.client.config_get("save").get("save", "")
            if persistence.get("appendonly") != "yes" and not save:
                log.warning(
                    "Redis has no persistence (appendonly no, no save points): a restart loses "
                    "cursors and queued runs; set appendonly yes"
                )
        except redis.exceptions.NoPermissionError:
            log.warning("cannot run CONFIG GET (NOPERM); skipping eviction/persistence checks")
        except redis.exceptions.ResponseError as error:
            log.warning("cannot check Redis settings: %s", error)


def install_signal_handlers(daemon: Daemon) -> None:
    def handle_stop(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("received %s: stopping", signal.Signals(signum).name)
        daemon.stop()

    def handle_reload(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        daemon.request_reload()

    signal.signal(signal.SIGTERM, handle_stop)
    signal.signal(signal.SIGINT, handle_stop)
    signal.signal(signal.SIGHUP, handle_reload)
