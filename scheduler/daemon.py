"""`cronlease run`: campaign for the lease, lead (tick and enqueue) or follow, stop cleanly.

One thread does all the scheduling work, so "in flight" has a plain meaning: a batch is written
and its outcome settled before the loop looks at the stop flag again. A second thread only
listens for handover notices and wakes the main loop.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from types import FrameType

import redis
from redis import Redis

from scheduler import failpoints
from scheduler.clock import RedisClock
from scheduler.config import Config
from scheduler.keys import Keys
from scheduler.lease import LeaseKeeper, LeaseTiming
from scheduler.redisconn import Backoff, ErrorEpisodes, connect
from scheduler.scripts import Scripts
from scheduler.targets import DueFire, Outcome, Target
from scheduler.targets.stream import StreamTarget, run_id
from scheduler.ticker import Ticker
from scheduler.timefmt import rfc3339_utc, rfc3339_utc_ms

log = logging.getLogger(__name__)

# Wake a little after a fire is due: absorbs the error in the Redis clock estimate.
WAKE_PAD_S = 0.002
MIN_REDIS_VERSION = (6, 2)


class Daemon:
    def __init__(
        self,
        config: Config,
        redis_url: str,
        keys: Keys,
        replica_id: str,
        timing: LeaseTiming,
        revive: Callable[[], object] | None = None,
    ) -> None:
        self.config = config
        # Called when Redis cannot be reached: the embedded mode restarts its server here.
        self._revive = revive
        self.keys = keys
        self.replica_id = replica_id
        self.timing = timing
        self._url = redis_url
        self.client_name = f"cronlease-{replica_id}"
        self.client: Redis = connect(redis_url, timing.socket_timeout_s, self.client_name)
        self.scripts = Scripts(self.client, keys)
        self.clock = RedisClock()
        self.lease = LeaseKeeper(self.scripts, replica_id, timing, self.clock)
        self.target: Target = StreamTarget(self.scripts, keys)
        self.ticker = Ticker(config.schedules)
        self.outcomes: Counter[str] = Counter()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._errors = ErrorEpisodes("redis")
        self._backoff = Backoff(cap_s=min(2.0, timing.ttl_s / 2))
        self._checked_server = False
        self._loop_turned_mono = time.monotonic()

    # -- control ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self.stopping:
            self._wake.wait(seconds)
        self._wake.clear()

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> int:
        listener = threading.Thread(target=self._listen_for_handover, daemon=True)
        listener.start()
        while not self.stopping:
            self._loop_turned_mono = time.monotonic()
            try:
                if self.lease.held:
                    self._lead_once()
                else:
                    self._follow_once()
                self._errors.recovered()
                self._backoff.reset()
            except redis.RedisError as error:
                if self._errors.failed(error) == "connection" and self._revive is not None:
                    self._try_revive()
                if self.lease.held and not self.lease.valid():
                    self._demote("no successful renewal before the lease deadline")
                cap = self.timing.renew_interval_s / 2 if self.lease.held else None
                self._sleep(self._backoff.next_delay(cap))
        self._shutdown()
        return 0

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
        # Sleep until the holder's lease would expire, or a handover notice wakes us.
        self._sleep(min(result.retry_in_s + WAKE_PAD_S, self.timing.renew_interval_s))

    def _promote(self) -> None:
        assert self.lease.lease is not None
        raw: dict[str, str] = self.client.hgetall(self.keys.cursor)  # type: ignore[assignment]
        cursors = {name: int(ts) for name, ts in raw.items()}
        now = self.clock.now()
        self.ticker.start(cursors, now)
        log.info(
            "leading with fencing token %d (%d schedules, %d with a cursor)",
            self.lease.lease.token,
            len(self.config.schedules),
            len(cursors),
            extra={"token": self.lease.lease.token, "event": "elected"},
        )

    def _demote(self, why: str) -> None:
        token = self.lease.lease.token if self.lease.lease else None
        self.lease.drop()
        log.warning("no longer leading: %s", why, extra={"token": token, "event": "demoted"})

    def _lead_once(self) -> None:
        if time.monotonic() >= self.lease.next_renew_mono and not self.lease.renew():
            self._demote("another replica holds the lease")
            return
        if not self.lease.valid():
            self._demote("no successful renewal before the lease deadline")
            return
        fires, misfires = self.ticker.due(self.clock.now())
        for misfire in misfires:
            self.outcomes["misfired"] += misfire.count
            log.warning(
                "dropped %d missed runs (older than the catch-up window or by policy)",
                misfire.count,
                extra={"schedule": misfire.schedule, "event": "misfire"},
            )
        if fires:
            self._write(fires)
        if not self.lease.held:
            return
        wake_in = self.lease.next_renew_mono - time.monotonic()
        next_due = self.ticker.next_due()
        if next_due is not None:
            wake_in = min(wake_in, next_due - self.clock.now() + WAKE_PAD_S)
        self._sleep(wake_in)

    def _write(self, fires: list[DueFire]) -> None:
        lease = self.lease.lease
        if lease is None or not self.lease.valid():
            self.ticker.requeue()
            self._demote("the lease deadline passed before the batch was sent")
            return
        # A freeze here, between the deadline check and the write, is what fencing is for.
        failpoints.hit("before-enqueue")
        try:
            outcomes = self.target.enqueue(lease, fires, rfc3339_utc_ms(self.clock.now()))
        except redis.RedisError:
            self.ticker.requeue()
            raise
        if Outcome.FENCED in outcomes:
            self.ticker.requeue()
            self.outcomes["fenced"] += len(fires)
            log.error(
                "write FENCED: the lease is no longer ours; nothing was written",
                extra={"token": lease.token, "event": "fenced"},
            )
            self._demote("fenced by the enqueue script")
            return
        self.ticker.settle()
        for fire, outcome in zip(fires, outcomes, strict=True):
            self.outcomes[outcome.value] += 1
            fire_time = rfc3339_utc(fire.fire_ts)
            log.debug(
                "%s (%s)",
                outcome.value,
                fire.trigger.value,
                extra={
                    "schedule": fire.schedule.name,
                    "run_id": run_id(fire.schedule.name, fire_time),
                    "token": lease.token,
                },
            )

    # -- stop -------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        if self.lease.held:
            token = self.lease.lease.token if self.lease.lease else None
            try:
                released = self.lease.release()
                log.info(
                    "released the lease (%s); followers were told to take over",
                    "ok" if released else "it was no longer ours",
                    extra={"token": token, "event": "released"},
                )
            except redis.RedisError as error:
                log.warning("could not release the lease (%s); it expires on its own", error)
        log.info("stopped; outcomes so far: %s", dict(self.outcomes) or "none")
        self.client.close()

    # -- helpers ----------------------------------------------------------------------------

    def _listen_for_handover(self) -> None:
        backoff = Backoff(cap_s=self.timing.renew_interval_s)
        while not self.stopping:
            try:
                # Same name as the main client: both are this replica's own connections.
                client = connect(self._url, 30.0, self.client_name)
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
    def handle(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("received %s: stopping", signal.Signals(signum).name)
        daemon.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
