"""The leader's turn: plan the next instant with the ticker, encode it ahead, write it on time,
and settle what Redis did with it.

The hand-over from the ticker to the write is all-or-nothing: whatever fails between taking a
batch and Redis's answer puts the batch back, so no fire is stranded, and a schedule moves on
only once Redis accepted (or refused, for its queue alone) its runs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from redis import Redis

from scheduler.core.runs import DueFire, Outcome
from scheduler.core.schedule import Config
from scheduler.core.ticker import Batch, Ticker
from scheduler.core.timeline import jitter_ms
from scheduler.daemon.runmetrics import count_unwritten, count_written
from scheduler.daemon.summary import Summary
from scheduler.ops import failpoints
from scheduler.ops.metrics import Metrics
from scheduler.store.clock import RedisClock
from scheduler.store.durability import Durability
from scheduler.store.keys import Keys
from scheduler.store.lease import LeaseKeeper
from scheduler.store.queuestats import TargetQueue
from scheduler.store.scripts import Scripts
from scheduler.targets import Prepared, Target

log = logging.getLogger("scheduler.daemon")

# Wake a little after a fire is due: absorbs the error in the Redis clock estimate.
WAKE_PAD_S = 0.002
# How long before an instant its batch is planned and encoded (see _prepare).
LOOKAHEAD_S = 0.25
MAX_LOOKAHEAD_S = 3.0
# A first guess at what planning and encoding one fire costs (measured: 4-12 µs); learned.
PREPARE_S_PER_FIRE = 15e-6
# One planning turn works at most this share of a lease TTL (at least PLAN_BUDGET_MIN_S) before
# the loop turns again: a takeover after days of outage plans every schedule's backlog, and must
# not keep the loop from its watchdog, its liveness probe and its lease checks meanwhile.
PLAN_BUDGET_TTLS = 0.5
PLAN_BUDGET_MIN_S = 1.0
# A queue whose key cannot take runs is tried again after this long (a configuration error).
REFUSED_RETRY_S = 5.0


@dataclass(frozen=True)
class Demotion:
    """Why the leader must stand down after a turn (the loop does it)."""

    why: str
    event: str = "demoted"


class BatchWriter:
    def __init__(
        self,
        ticker: Ticker,
        target: Target,
        lease: LeaseKeeper,
        clock: RedisClock,
        scripts: Scripts,
        keys: Keys,
        metrics: Metrics,
        client: Redis,
        durability: Durability | None,
        ttl_s: float,
    ) -> None:
        self.ticker = ticker
        self.target = target
        self.lease = lease
        self.clock = clock
        self.scripts = scripts
        self.keys = keys
        self.metrics = metrics
        self.client = client
        self.durability = durability
        self._plan_budget_s = max(PLAN_BUDGET_MIN_S, PLAN_BUDGET_TTLS * ttl_s)
        # The next instant's batch, encoded ahead: (due at, Redis time; the batch).
        self.prepared: tuple[float, Prepared] | None = None
        self._prepare_s_per_fire = PREPARE_S_PER_FIRE
        # Cursors to raise in Redis (schedules this leader started serving from "now"), sent
        # before the next write; kept until Redis confirmed them.
        self._unrecorded: dict[str, int] = {}
        self._refused_queues: set[str] = set()
        self._jitter_s: dict[str, int] = {}
        self._config: Config | None = None
        # Told where target queues keep their runs, on every (re)configuration (queue gauges).
        self.on_targets: Callable[[Mapping[str, TargetQueue]], None] | None = None
        self.summary = Summary()

    def configure(self, config: Config) -> None:
        self._jitter_s = {s.name: s.jitter_s for s in config.schedules if s.jitter_s}
        self._config = config
        configure = getattr(self.target, "configure", None)
        if configure is not None:
            configure(config.queues)
        target_queues = getattr(self.target, "target_queues", None)
        if target_queues is not None and self.on_targets is not None:
            self.on_targets(target_queues())

    def reset(self, why: str = "the term ended") -> None:
        """A new term (or none): the ticker starts afresh from Redis's cursors on election. The
        last term's counts not shown yet are logged now (the next term starts on its first
        turn)."""
        self.summary.end(time.monotonic(), why)
        self.prepared = None
        self._unrecorded = {}
        self._refused_queues = set()

    def record(self, positions: Mapping[str, int], forget: Iterable[str] = ()) -> None:
        """Raise these cursors in Redis before the next write (retried until confirmed)."""
        for name in forget:
            self._unrecorded.pop(name, None)
        self._unrecorded.update(positions)

    def turn(self) -> Demotion | None:
        demotion = self._turn()
        lease = self.lease.lease
        now_mono = time.monotonic()
        if lease is not None and not self.summary.active and demotion is None:
            self.summary.start(lease.token, now_mono)
        self.summary.poll(now_mono, self._next_fire_in_s)
        return demotion

    def _next_fire_in_s(self) -> float | None:
        next_due = self.ticker.next_due()
        return None if next_due is None else next_due - self.clock.now()

    def _turn(self) -> Demotion | None:
        if self._unrecorded:
            demotion = self._record_cursors()
            if demotion is not None:
                return demotion
        if self.prepared is None:
            self._prepare()
        if self.prepared is not None and self.clock.now() >= self.prepared[0]:
            prepared, self.prepared = self.prepared[1], None
            return self._write(prepared)
        return None

    def wake_in_s(self) -> float:
        """How long the loop may sleep before this has work again."""
        if self.prepared is not None:
            return self.prepared[0] - self.clock.now() + WAKE_PAD_S
        next_due = self.ticker.next_due()
        if next_due is None:
            return float("inf")
        return next_due - self._lookahead() - self.clock.now()

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
            prepared = self.target.prepare(lease, batch.fires, at)
        except BaseException:
            self.ticker.requeue()
            raise
        self._count_unwritten(batch)
        self.prepared = (at, prepared)
        took_s = time.monotonic() - started
        # Learn what preparing one fire costs here (a slow average: one odd batch moves it little).
        per_fire = took_s / len(batch.fires)
        self._prepare_s_per_fire += (per_fire - self._prepare_s_per_fire) / 8

    def _lookahead(self) -> float:
        """How early to prepare the next instant: LOOKAHEAD_S, or longer for a big instant
        (100,000 schedules on one second take about a second to plan and encode)."""
        expected_s = 2 * self.ticker.next_size() * self._prepare_s_per_fire
        return min(MAX_LOOKAHEAD_S, max(LOOKAHEAD_S, expected_s))

    def drop_prepared(self) -> None:
        """Put a batch encoded ahead back into the ticker (a reload is about to change it)."""
        if self.prepared is not None:
            self.prepared = None
            self.ticker.requeue()

    def _count_unwritten(self, batch: Batch) -> None:
        touched = count_unwritten(self.metrics, batch)
        self.summary.add(
            {"misfired": sum(batch.misfired.values()), "skipped": sum(batch.disabled.values())}
        )
        if touched:
            self.update_next_fires(touched)

    def _write(self, prepared: Prepared) -> Demotion | None:
        lease = self.lease.lease
        if lease is None or not self.lease.valid():
            self.ticker.requeue()
            return Demotion("the lease deadline passed before the batch was sent")
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
        self.summary.add(count_written(self.metrics, fires, written, lease.token))
        if fenced:
            self.ticker.requeue()
            log.error(
                "write FENCED: the lease is no longer ours; nothing more was written",
                extra={"token": lease.token, "event": "fenced"},
            )
            return Demotion("fenced by the enqueue script", event="fenced")
        refused = self._refused(fires, written.outcomes)
        self.ticker.settle(refused, self.clock.now() + REFUSED_RETRY_S)
        self.update_next_fires({fire.schedule.name for fire in fires})
        # Durability hook: runs too few replicas hold could vanish in a failover. Stand down, so
        # a new leader resumes from the cursor the replicas do have.
        if self.durability is not None and not self.durability.confirm(self.client, "enqueue"):
            return Demotion("an enqueue was not acknowledged by replicas", event="unacknowledged")
        return None

    def _refused(self, fires: Sequence[DueFire], outcomes: Sequence[Outcome]) -> set[str]:
        """Schedules whose queue refused their runs (its key is not a stream): said once per
        queue until it takes runs again; those schedules wait, the others go on."""
        refused: set[str] = set()
        queues: set[str] = set()
        # The common case costs one scan of the outcomes, not two passes over 10,000 fires.
        if not self._refused_queues and Outcome.REFUSED not in outcomes:
            return refused
        for fire, outcome in zip(fires, outcomes, strict=True):
            if outcome is Outcome.REFUSED:
                refused.add(fire.schedule.name)
                queues.add(fire.schedule.queue)
        for queue in sorted(queues - self._refused_queues):
            log.error(
                "queue %r REFUSED runs: %s; its schedules wait (cursor unmoved, retried every "
                "%gs) until that changes; other queues are not affected",
                queue,
                self._why_refused(queue),
                REFUSED_RETRY_S,
                extra={"event": "queue_refused"},
            )
        delivered = {fire.schedule.queue for fire in fires} - queues
        for queue in sorted(self._refused_queues & delivered):
            log.warning("queue %r takes runs again", queue, extra={"event": "queue_recovered"})
        self._refused_queues = (self._refused_queues - delivered) | queues
        return refused

    def _why_refused(self, queue: str) -> str:
        reason = self.target.refusal(queue)
        if reason is not None:
            return reason
        spec = self._config.queue(queue) if self._config is not None else None
        if spec is None or spec.target == "stream":
            return f"its key {self.keys.queue(queue)} holds another type than a stream"
        return (
            f"a key of {spec.describe()} holds another type than {spec.target} uses there "
            "(another program's key of the same name?); remove or rename it"
        )

    def _record_cursors(self) -> Demotion | None:
        lease = self.lease.lease
        if lease is None:
            return None
        if not self.scripts.advance_cursors(lease.value, self._unrecorded):
            return Demotion("fenced while recording cursors", event="fenced")
        self._unrecorded = {}
        return None

    def update_next_fires(self, names: Iterable[str]) -> None:
        """The next-fire gauges of these schedules (a leader's figures only)."""
        if not self.metrics.per_schedule:
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
