"""Each fire to its queue's target: cronlease streams, or another job system's queue.

The leader hands one instant's fires to `RoutedTarget`. Fires of stream queues go to the stream
target as before; fires of a queue with a `queues:` target are encoded by that target's module
(payloads built here, ahead of the instant) into ENQUEUE_TARGET calls, one per logical database,
each fenced and de-duplicated with the cursor like the stream's. A schedule has one queue, so
its fires stay in one call and its cursor moves all-or-nothing, as with streams.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from scheduler.core.queues import QueueSpec
from scheduler.core.runs import DueFire, Lease, Outcome, Written
from scheduler.core.timefmt import rfc3339_utc, rfc3339_utc_ms
from scheduler.store.keys import Keys
from scheduler.store.queuestats import TargetQueue
from scheduler.store.scripts import EnqueueBatch, Scripts, TargetCall
from scheduler.targets.encoding import Encoder, Run, add_writes
from scheduler.targets.registry import encoder_for, target_queues
from scheduler.targets.stream import PreparedStream, StreamTarget, run_id

# A call blocks Redis for its whole length: calls are cut at about the arguments of a stream
# call of 512 fires (bench/bench_targets.py: ~4 ms), whatever a target's writes per run; a
# schedule's fires stay in one call all the same. The first call is small, so Redis starts
# while the rest are still being sent.
MAX_ARGS_PER_CALL = 4096
MAX_FIRES_PER_CALL = 256
FIRST_CALL_ARGS = 512

_CODES = {1: Outcome.ENQUEUED, 0: Outcome.DUPLICATE, 2: Outcome.PAUSED, 3: Outcome.REFUSED}


@dataclass(frozen=True)
class PreparedRoutes:
    fires: Sequence[DueFire]
    stream: PreparedStream | None
    stream_index: list[int]  # position in `fires` of each of the stream's fires
    outbox: PreparedStream | None
    outbox_index: list[int]
    targets: EnqueueBatch | None
    target_index: list[int]
    target_counts: list[int]  # fires per target call
    refused_index: list[int]  # fires of queues that cannot take runs here


class RoutedTarget:
    def __init__(
        self,
        scripts: Scripts,
        keys: Keys,
        queues: Mapping[str, QueueSpec],
        own_db: int = 0,
        cluster: bool = False,
        make_encoder: Callable[[QueueSpec], Encoder] = encoder_for,
    ) -> None:
        self._scripts = scripts
        self._stream = StreamTarget(scripts, keys)
        # Relayed queues' runs go, as stream entries, to their outbox (daemon/relay.py).
        self._outbox_keys = OutboxKeys(keys.namespace)
        self._outbox = StreamTarget(scripts, self._outbox_keys)
        self._own_db = own_db
        # Redis Cluster: a script's keys must share one slot and there is only db 0, so no
        # foreign system's keys can be written beside the cursor (TARGETS.md).
        self._cluster = cluster
        self._make_encoder = make_encoder
        self.configure(queues)

    def configure(self, queues: Mapping[str, QueueSpec]) -> None:
        self._relayed = {name for name, spec in queues.items() if spec.relayed}
        self._encoders: dict[str, Encoder] = {
            name: self._make_encoder(spec)
            for name, spec in queues.items()
            if spec.target != "stream" and name not in self._relayed
        }

    def encoder(self, queue: str) -> Encoder | None:
        return self._encoders.get(queue)

    def target_queues(self) -> dict[str, TargetQueue]:
        """Where each target queue's waiting runs are (for the queue-length gauge): a
        relayed queue's are in its outbox until the relay delivers them."""
        found = target_queues(self._encoders)
        for queue in self._relayed:
            found[queue] = TargetQueue(None, [(self._outbox_keys.outbox(queue), "stream")])
        return found

    def refusal(self, queue: str) -> str | None:
        """Why a queue cannot take runs at all here, or None."""
        if self._cluster and queue in self._encoders:
            return (
                f"{self._encoders[queue].spec.describe()} cannot be written beside the cursor "
                "on Redis Cluster (one hash slot per script, db 0 only)"
            )
        return None

    def prepare(self, lease: Lease, fires: Sequence[DueFire], at: float) -> PreparedRoutes:
        stream_fires: list[DueFire] = []
        stream_index: list[int] = []
        outbox_fires: list[DueFire] = []
        outbox_index: list[int] = []
        refused_index: list[int] = []
        by_db: dict[int | None, _Calls] = {}
        target_index: dict[int | None, list[int]] = {}
        enqueued_at_text = rfc3339_utc_ms(at)
        fire_times: dict[int, str] = {}
        head = (str(lease.token), lease.replica_id)
        for position, fire in enumerate(fires):
            schedule, fire_ts, trigger = fire
            encoder = self._encoders.get(schedule.queue)
            if schedule.queue in self._relayed:
                outbox_fires.append(fire)
                outbox_index.append(position)
                continue
            if encoder is None:
                stream_fires.append(fire)
                stream_index.append(position)
                continue
            if self._cluster:
                refused_index.append(position)
                continue
            fire_time = fire_times.get(fire_ts)
            if fire_time is None:
                fire_time = fire_times[fire_ts] = rfc3339_utc(fire_ts)
            run = Run(
                run_id=run_id(schedule.name, fire_time),
                schedule=schedule.name,
                job=schedule.job,
                args=schedule.args,
                args_json=schedule.args_json,
                queue=schedule.queue,
                fire_time=fire_time,
                fire_ts=fire_ts,
                enqueued_at=at,
                enqueued_at_text=enqueued_at_text,
                trigger=trigger.value,
                token=head[0],
                replica=head[1],
            )
            db = encoder.spec.db
            calls = by_db.get(db)
            if calls is None:
                calls = by_db[db] = _Calls(db)
                target_index[db] = []
            calls.add(schedule.name, fire_ts, encoder, run)
            target_index[db].append(position)
        target_calls = [call for calls in by_db.values() for call in calls.finish()]
        return PreparedRoutes(
            fires=fires,
            stream=self._stream.prepare(lease, stream_fires) if stream_fires else None,
            stream_index=stream_index,
            outbox=self._outbox.prepare(lease, outbox_fires) if outbox_fires else None,
            outbox_index=outbox_index,
            targets=(
                self._scripts.target_commands(lease, target_calls, self._own_db)
                if target_calls
                else None
            ),
            target_index=[i for indexes in target_index.values() for i in indexes],
            target_counts=[call.count for call in target_calls],
            refused_index=refused_index,
        )

    def send(self, prepared: object) -> Written:
        assert isinstance(prepared, PreparedRoutes)
        count = len(prepared.fires)
        outcomes: list[Outcome] = [Outcome.REFUSED] * count
        times: list[float] = [0.0] * count
        for target, part, index in (
            (self._stream, prepared.stream, prepared.stream_index),
            (self._outbox, prepared.outbox, prepared.outbox_index),
        ):
            if part is None:
                continue
            written = target.send(part)
            for i, outcome, at in zip(index, written.outcomes, written.enqueued_at_s, strict=True):
                outcomes[i], times[i] = outcome, at
        if prepared.targets is not None:
            replies = self._scripts.run_enqueue(prepared.targets)
            positions = iter(prepared.target_index)
            for calls, reply in zip(prepared.target_counts, replies, strict=True):
                for n in range(calls):
                    i = next(positions)
                    if reply.fenced:
                        outcomes[i] = Outcome.FENCED
                    else:
                        outcomes[i], times[i] = _CODES[reply.codes[n]], reply.enqueued_at_s
        return Written(outcomes, times)


class OutboxKeys(Keys):
    """Keys whose `queue()` is the outbox stream: the stream target, given these, writes a
    relayed queue's runs to `{ns}:outbox:<queue>` with every guarantee of a queue stream."""

    def queue(self, name: str) -> str:
        return self.outbox(name)


class _Calls:
    """The ENQUEUE_TARGET calls of one logical database, filled fire by fire. A schedule's fires
    never straddle two calls (each call is atomic: a cursor moves all-or-nothing in one)."""

    def __init__(self, db: int | None) -> None:
        self.db = db
        self._done: list[TargetCall] = []
        self._limit = FIRST_CALL_ARGS
        self._start()
        self._previous: str | None = None

    def _start(self) -> None:
        self._keys: dict[str, int] = {}
        self._args: list[object] = []
        self._count = 0

    def add(self, schedule: str, fire_ts: int, encoder: Encoder, run: Run) -> None:
        full = len(self._args) >= self._limit or self._count >= MAX_FIRES_PER_CALL
        if full and schedule != self._previous:
            self._flush()
            self._limit = MAX_ARGS_PER_CALL
        self._previous = schedule
        writes = encoder.writes(run)
        keys = self._keys
        args = self._args
        args += (schedule, fire_ts)
        add_writes(args, keys, writes, 4)
        self._count += 1

    def _flush(self) -> None:
        if self._count:
            self._done.append(TargetCall(list(self._keys), self.db, self._args, self._count))
        self._start()

    def finish(self) -> list[TargetCall]:
        self._flush()
        return self._done
