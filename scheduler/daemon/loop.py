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
from collections.abc import Callable, Iterable, Sequence
from types import FrameType

from redis import Redis

from scheduler import __version__
from scheduler.core.config import Config, ConfigError, Problem, load_config
from scheduler.core.runs import DueFire, Outcome
from scheduler.core.ticker import Batch, Ticker
from scheduler.core.timefmt import rfc3339_utc
from scheduler.core.timeline import jitter_ms
from scheduler.daemon.runmetrics import count_unwritten, count_written
from scheduler.ops import failpoints
from scheduler.ops.configwatch import ConfigWatch
from scheduler.ops.metrics import Metrics
from scheduler.ops.sdnotify import Notifier
from scheduler.store.clock import RedisClock
from scheduler.store.connection import REDIS_ERRORS, Backoff, Connector, ErrorEpisodes
from scheduler.store.durability import Durability
from scheduler.store.keys import Keys
from scheduler.store.lease import LeaseKeeper, LeaseTiming
from scheduler.store.queuestats import QueueStats
from scheduler.store.scripts import Scripts
from scheduler.store.serverchecks import warn_about_server
from scheduler.targets import Prepared, Target
from scheduler.targets.stream import StreamTarget

log = logging.getLogger("scheduler.daemon")  # the name operators grep for, as before the split

# Wake a little after a fire is due: absorbs the error in the Redis clock estimate.
WAKE_PAD_S = 0.002
# How long before an instant its batch is planned and encoded (see _prepare).
LOOKAHEAD_S = 0.25
MAX_LOOKAHEAD_S = 3.0
# A first guess at what planning and encoding one fire costs (measured: 4-12 µs); learned.
PREPARE_S_PER_FIRE = 15e-6
# Replicas silent for this many lease TTLs drop out of the heartbeat set.
FORGET_REPLICA_TTLS = 30
# One planning turn works at most this share of a lease TTL (at least PLAN_BUDGET_MIN_S) before
# the loop turns again: a takeover after days of outage plans every schedule's backlog, and must
# not keep the loop from its watchdog, its liveness probe and its lease checks meanwhile.
PLAN_BUDGET_TTLS = 0.5
PLAN_BUDGET_MIN_S = 1.0
# A queue whose key cannot take runs is tried again after this long (a configuration error).
REFUSED_RETRY_S = 5.0


class FencedError(Exception):
    """A fenced write while taking over: the lease is someone else's already."""


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
        self.target: Target = StreamTarget(self.scripts, keys)
        self.ticker = Ticker(config.schedules)
        self._plan_budget_s = max(PLAN_BUDGET_MIN_S, PLAN_BUDGET_TTLS * timing.ttl_s)
        # Cursors to raise in Redis (schedules this leader started serving from "now"), sent
        # before the next write; kept until Redis confirmed them.
        self._unrecorded: dict[str, int] = {}
        self._refused_queues: set[str] = set()
        self.queue_stats = QueueStats(self.client, keys, metrics)
        self.paused: frozenset[str] = frozenset()
        self._watch = ConfigWatch(config.source)
        self._reload_requested = False
        # A reload reads and validates the file on a thread of its own (100,000 schedules take
        # seconds of YAML): the loop keeps scheduling on the running config meanwhile, and
        # takes the result (a Config, or the ConfigError) on its next turn.
        self._loading: threading.Thread | None = None
        self._load_again = False
        self._loaded: Config | ConfigError | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._errors = ErrorEpisodes("redis")
        self._backoff = Backoff(cap_s=min(2.0, timing.ttl_s / 2))
        self._checked_server = False
        self._redis_ok = False
        self._ready_notified = False
        self._next_heartbeat_mono = 0.0
        # The next instant's batch, encoded ahead: (due at, Redis time; the batch).
        self._prepared: tuple[float, Prepared] | None = None
        self._prepare_s_per_fire = PREPARE_S_PER_FIRE
        # Whether this loop acts as leader; the renewal thread may drop the lease under it, and
        # the loop then demotes (metrics, prepared batch) on its next turn.
        self._leading = False
        self._leading_token: int | None = None
        self._leading_event = threading.Event()
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
        if seconds > 0 and not self.stopping and not self._reload_requested and not self._loaded:
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
        threading.Thread(target=self._listen_for_handover, daemon=True).start()
        threading.Thread(target=self._renew_forever, daemon=True).start()
        while not self.stopping:
            self._turn()
            if self._reload_requested or self._watch.changed(time.monotonic()):
                self._reload_requested = False
                self._start_reload()
            loaded = self._loaded
            if loaded is not None:
                self._loaded = None
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

    def _renew_forever(self) -> None:
        """The lease renewal thread: renews on time however long the main loop is busy (planning
        100,000 cron schedules takes seconds), so leadership never lapses for want of a turn.
        The main loop still checks the deadline before every write."""
        errors = ErrorEpisodes("lease renewal")
        withheld = False
        while not self.stopping:
            if not self._leading or not self.lease.held:
                self._leading_event.wait(0.5)
                continue
            delay = self.lease.next_renew_mono - time.monotonic()
            if delay > 0:
                self._stopping.wait(delay)
                continue
            # A wedged main loop must not lead by proxy: past the health threshold the lease is
            # left to expire, so a follower takes over within a TTL instead of never.
            idle = time.monotonic() - self._loop_turned_mono
            if idle > self.health_threshold_s:
                if not withheld:
                    withheld = True
                    log.error(
                        "main loop has not turned for %.1fs: NOT renewing the lease, so that "
                        "another replica takes over",
                        idle,
                        extra={"event": "renewal_withheld"},
                    )
                self._stopping.wait(min(0.5, self.timing.renew_interval_s / 2))
                continue
            withheld = False
            started = time.monotonic()
            try:
                renewed = self.lease.renew()
            except REDIS_ERRORS as error:
                self.metrics.lease_renewals.labels("error").inc()
                self.metrics.redis_errors.labels(errors.failed(error)).inc()
                self._stopping.wait(min(0.05, self.timing.renew_interval_s / 10))
                continue
            except Exception:
                # A bug must not end the thread: the lease would lapse under a healthy loop.
                log.exception("lease renewal failed unexpectedly; retrying")
                self.metrics.lease_renewals.labels("error").inc()
                self._stopping.wait(min(0.05, self.timing.renew_interval_s / 10))
                continue
            errors.recovered()
            self.metrics.lease_renewal_duration.observe(time.monotonic() - started)
            self.metrics.lease_renewals.labels("ok" if renewed else "lost").inc()
            if not renewed:
                self._wake.set()  # the main loop demotes

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
            raw: dict[str, str] = self.client.hgetall(self.keys.cursor)  # type: ignore[assignment]
            cursors = {name: int(ts) for name, ts in raw.items()}
            failpoints.hit("promote")
            now = self.clock.now()
            self.ticker.start(cursors, now)
            # A schedule without a cursor starts from now; say so in Redis, or its first fire
            # is lost if this leader goes before it (the next would start from ITS now).
            unseen = self.ticker.unseen(cursors)
            if unseen and not self.scripts.advance_cursors(lease.value, unseen):
                raise FencedError("fenced while recording the cursors of new schedules")
            if not self.scripts.leader_info(
                lease.value, lease.token, self.replica_id, now, self.config.digest
            ):
                raise FencedError("fenced while recording the leader info")
        except FencedError as error:
            self._abandon_lease(error)
            return
        except BaseException as error:
            self._abandon_lease(error)
            raise
        self._unrecorded = {}
        self._leading = True
        self._leading_token = lease.token
        self._leading_event.set()
        self.metrics.leader.set(1)
        self.metrics.lease_token.set(lease.token)
        self.metrics.leader_changes.labels("elected").inc()
        self._next_heartbeat_mono = 0.0
        self._update_next_fires(s.name for s in self.config.schedules)
        log.info(
            "leading with fencing token %d (%d schedules, %d with a cursor)",
            lease.token,
            len(self.config.schedules),
            len(cursors) + len(unseen),
            extra={"token": lease.token, "event": "elected"},
        )
        self._notify_ready()
        self.notifier.status(f"leading since {rfc3339_utc(int(now))} with token {lease.token}")

    def _abandon_lease(self, error: BaseException) -> None:
        """Taking over failed part-way: give the lease back (if Redis lets us) so another
        replica can lead now rather than after a TTL with no leader."""
        lease = self.lease.lease
        log.warning(
            "could not take over (%s: %s); giving the lease back",
            type(error).__name__,
            error,
            extra={"token": lease.token if lease else None, "event": "takeover_failed"},
        )
        try:
            self.lease.release()
        except REDIS_ERRORS:
            pass  # unreachable: the lease expires on its own
        finally:
            self.lease.drop()

    def _demote(self, why: str, event: str = "demoted") -> None:
        self._prepared = None  # the ticker starts afresh from Redis's cursors on re-election
        self._leading = False
        self._leading_event.clear()
        token = self._leading_token
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
        if self._unrecorded:
            self._record_cursors()
        if self._prepared is None:
            self._prepare()
        if self._prepared is not None and self.clock.now() >= self._prepared[0]:
            prepared, self._prepared = self._prepared[1], None
            self._write(prepared)
        if not self._leading:
            return
        self._heartbeat_if_due()
        # The deadline wake-up makes the loop notice a lapsed lease even with nothing due.
        wake_in = min(self.lease.time_left_s(), self._next_heartbeat_mono - time.monotonic())
        if self._prepared is not None:
            wake_in = min(wake_in, self._prepared[0] - self.clock.now() + WAKE_PAD_S)
        else:
            next_due = self.ticker.next_due()
            if next_due is not None:
                wake_in = min(wake_in, next_due - self._lookahead() - self.clock.now())
        self._sleep(wake_in)

    def _prepare(self) -> None:
        """Plan and encode the next instant's batch up to LOOKAHEAD_S before it is due, so that
        when it comes only the write is left. Nothing is sent before its instant.

        The hand-over from the ticker is all-or-nothing: whatever fails between taking the
        batch and holding it encoded puts the batch back, so no fire is stranded."""
        next_due = self.ticker.next_due()
        now = self.clock.now()
        if next_due is None or next_due - now > self._lookahead():
            return
        started = time.monotonic()
        deadline = started + self._plan_budget_s
        at = max(next_due, now)
        try:
            batch = self.ticker.due(at, lambda: time.monotonic() > deadline)
            lease = self.lease.lease
            if lease is None:  # the renewal thread dropped it meanwhile: nothing to write on
                self.ticker.requeue()
                return
            if not batch.fires:
                self.ticker.settle()  # misfires and disabled schedules only: nothing to write
                self._count_unwritten(batch)
                return
            prepared = self.target.prepare(lease, batch.fires)
        except BaseException:
            self.ticker.requeue()
            raise
        self._count_unwritten(batch)
        self._prepared = (at, prepared)
        took_s = time.monotonic() - started
        # Learn what preparing one fire costs here (a slow average: one odd batch moves it little).
        per_fire = took_s / len(batch.fires)
        self._prepare_s_per_fire += (per_fire - self._prepare_s_per_fire) / 8

    def _lookahead(self) -> float:
        """How early to prepare the next instant: LOOKAHEAD_S, or longer for a big instant
        (100,000 schedules on one second take about a second to plan and encode)."""
        expected_s = 2 * self.ticker.next_size() * self._prepare_s_per_fire
        return min(MAX_LOOKAHEAD_S, max(LOOKAHEAD_S, expected_s))

    def _drop_prepared(self) -> None:
        if self._prepared is not None:
            self._prepared = None
            self.ticker.requeue()

    def _count_unwritten(self, batch: Batch) -> None:
        touched = count_unwritten(self.metrics, batch)
        if touched:
            self._update_next_fires(touched)

    def _write(self, prepared: Prepared) -> None:
        lease = self.lease.lease
        if lease is None or not self.lease.valid():
            self.ticker.requeue()
            self._demote("the lease deadline passed before the batch was sent")
            return
        # A freeze here, between the deadline check and the write, is what fencing is for.
        failpoints.hit("before-enqueue")
        try:
            written = self.target.send(prepared)
        except BaseException:
            # Some calls may have been applied: the cursor turns their resend into duplicates.
            self.ticker.requeue()
            raise
        fires = prepared.fires
        fenced = Outcome.FENCED in written.outcomes
        count_written(self.metrics, fires, written, lease.token)
        if fenced:
            self.ticker.requeue()
            log.error(
                "write FENCED: the lease is no longer ours; nothing more was written",
                extra={"token": lease.token, "event": "fenced"},
            )
            self._demote("fenced by the enqueue script", event="fenced")
            return
        refused = self._refused(fires, written.outcomes)
        self.ticker.settle(refused, self.clock.now() + REFUSED_RETRY_S)
        self._update_next_fires({fire.schedule.name for fire in fires})
        # Durability hook: runs too few replicas hold could vanish in a failover. Stand down, so
        # a new leader resumes from the cursor the replicas do have.
        if self.durability is not None and not self.durability.confirm(self.client, "enqueue"):
            self._demote("an enqueue was not acknowledged by replicas", event="unacknowledged")

    def _refused(self, fires: Sequence[DueFire], outcomes: Sequence[Outcome]) -> set[str]:
        """Schedules whose queue refused their runs (its key is not a stream): said once per
        queue until it takes runs again; those schedules wait, the others go on."""
        refused: set[str] = set()
        queues: set[str] = set()
        for fire, outcome in zip(fires, outcomes, strict=True):
            if outcome is Outcome.REFUSED:
                refused.add(fire.schedule.name)
                queues.add(fire.schedule.queue)
        for queue in sorted(queues - self._refused_queues):
            log.error(
                "queue %r REFUSED runs: its key %s holds another type than a stream; its "
                "schedules wait (cursor unmoved, retried every %gs) until the key is removed or "
                "renamed; other queues are not affected",
                queue,
                self.keys.queue(queue),
                REFUSED_RETRY_S,
                extra={"event": "queue_refused"},
            )
        delivered = {f.schedule.queue for f, o in zip(fires, outcomes, strict=True)} - queues
        for queue in sorted(self._refused_queues & delivered):
            log.warning("queue %r takes runs again", queue, extra={"event": "queue_recovered"})
        self._refused_queues = (self._refused_queues - delivered) | queues
        return refused

    def _record_cursors(self) -> None:
        lease = self.lease.lease
        if lease is None:
            return
        if not self.scripts.advance_cursors(lease.value, self._unrecorded):
            self._demote("fenced while recording cursors", event="fenced")
            return
        self._unrecorded = {}

    def _update_next_fires(self, names: Iterable[str]) -> None:
        if not self.metrics.per_schedule or not self._leading:
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

    def _start_reload(self) -> None:
        if self._loading is not None and self._loading.is_alive():
            self._load_again = True  # the file changed again while being read: read it again
            return
        self.notifier.reloading()
        self.metrics.last_reload_time.set(time.time())
        self._loading = threading.Thread(target=self._load, name="config-load", daemon=True)
        self._loading.start()

    def _load(self) -> None:
        try:
            self._loaded = load_config(self.config.source)
        except ConfigError as error:
            self._loaded = error
        except Exception as error:  # a bug in validation must not pass for a good config
            log.exception("config reload crashed")
            self._loaded = ConfigError(self.config.source, [Problem(0, f"internal error: {error}")])
        self._wake.set()

    def _reload(self, loaded: Config | ConfigError) -> None:
        if self._load_again:
            self._load_again = False
            self._start_reload()
        if isinstance(loaded, ConfigError):
            self.metrics.reloads.labels("failure").inc()
            self.metrics.last_reload_success.set(0)
            log.error(
                "config reload FAILED; the running config (hash %s) stays in force:\n%s",
                self.config.digest,
                "\n".join(loaded.lines()),
                extra={"event": "reload_failed"},
            )
            self.notifier.ready()
            return
        new = loaded
        self.metrics.reloads.labels("success").inc()
        self.metrics.last_reload_success.set(1)
        if new.digest == self.config.digest:
            log.info("config file touched but unchanged (hash %s)", new.digest)
            self.notifier.ready()
            return
        leading = self._leading and self.clock.synced
        self._drop_prepared()
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
            for name in changes.removed:
                self._unrecorded.pop(name, None)
            self._unrecorded.update(changes.restarted)
            self._update_next_fires(s.name for s in new.schedules)
            self._next_heartbeat_mono = 0.0
            if changes.removed and self.lease.lease is not None:
                try:
                    self.scripts.forget(self.lease.lease.value, changes.removed)
                except REDIS_ERRORS as error:
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
            except REDIS_ERRORS as error:
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
                    if message is not None and not self._leading:
                        log.debug("handover notice: %s", message.get("data"))
                        self._wake.set()
            except REDIS_ERRORS:
                # The main loop reports Redis trouble; here we only retry quietly.
                self._stopping.wait(backoff.next_delay())

    def _try_revive(self) -> None:
        assert self._revive is not None
        try:
            self._revive()
        except (RuntimeError, OSError) as error:
            log.warning("could not restart the embedded Redis: %s", error)


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
