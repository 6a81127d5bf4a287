"""The default target: one Redis Stream per queue, entries as DESIGN's "run" table says."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.core.runs import DueFire, Lease, Outcome, Written
from scheduler.store.keys import Keys
from scheduler.store.scripts import EnqueueBatch, EnqueueCall, Scripts
from scheduler.targets import Prepared

# Bounds Redis's time inside one script call (it blocks every other client meanwhile). The first
# call of a batch is small so Redis starts writing while the rest are still being encoded.
MAX_FIRES_PER_CALL = 512
FIRST_CALL_FIRES = 64

_CODES = {1: Outcome.ENQUEUED, 0: Outcome.DUPLICATE, 2: Outcome.PAUSED, 3: Outcome.REFUSED}


@dataclass(frozen=True)
class PreparedStream:
    fires: Sequence[DueFire]
    commands: EnqueueBatch
    orders: list[list[int]]  # per command: the position in `fires` of each of its fires


def run_id(schedule: str, fire_time: str) -> str:
    """The idempotency key workers see: a pure function of schedule and fire time."""
    return f"{schedule}@{fire_time}"


class StreamTarget:
    def __init__(self, scripts: Scripts, keys: Keys) -> None:
        self._scripts = scripts
        self._keys = keys

    def prepare(self, lease: Lease, fires: Sequence[DueFire], at: float = 0.0) -> PreparedStream:
        calls, orders = self._calls(fires)
        commands = self._scripts.enqueue_commands(lease, calls)
        return PreparedStream(fires, commands, orders)

    def send(self, prepared: Prepared) -> Written:
        assert isinstance(prepared, PreparedStream)
        replies = self._scripts.run_enqueue(prepared.commands)
        count = len(prepared.fires)
        outcomes = [Outcome.ENQUEUED] * count
        times = [0.0] * count
        for order, reply in zip(prepared.orders, replies, strict=True):
            if reply.fenced:
                for position in order:
                    outcomes[position] = Outcome.FENCED
                continue
            at = reply.enqueued_at_s
            for position in order:
                times[position] = at
            for j, code in reply.others.items():
                outcomes[order[j]] = _CODES[code]
        return Written(outcomes, times)

    def refusal(self, queue: str) -> str | None:
        return None

    def enqueue(self, lease: Lease, fires: Sequence[DueFire]) -> Written:
        return self.send(self.prepare(lease, fires))

    def _calls(self, fires: Sequence[DueFire]) -> tuple[list[EnqueueCall], list[list[int]]]:
        """Script calls of up to MAX_FIRES_PER_CALL fires, and the positions of each call's
        fires in `fires`. A schedule's fires never straddle two calls: each call is atomic, so
        a schedule's cursor moves all-or-nothing in one."""
        calls: list[EnqueueCall] = []
        orders: list[list[int]] = []
        limit = FIRST_CALL_FIRES
        groups: dict[tuple[int, int, str], _Group] = {}
        streams: dict[str, int] = {}
        count = 0
        previous = None
        for position, (schedule, fire_ts, trigger) in enumerate(fires):
            if count >= limit and schedule is not previous:
                self._finish(groups, streams, count, calls, orders)
                groups, streams, count, limit = {}, {}, 0, MAX_FIRES_PER_CALL
            previous = schedule
            queue = schedule.queue
            index = streams.get(queue)
            if index is None:
                index = streams[queue] = len(streams) + 1
            key = (fire_ts, index, trigger.value)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(queue)
            group.names.append(schedule.name)
            group.jobs.append(schedule.job)
            group.args.append(schedule.args_json)
            group.positions.append(position)
            count += 1
        if count:
            self._finish(groups, streams, count, calls, orders)
        return calls, orders

    def _finish(
        self,
        groups: dict[tuple[int, int, str], _Group],
        streams: dict[str, int],
        count: int,
        calls: list[EnqueueCall],
        orders: list[list[int]],
    ) -> None:
        """One call's arguments (ENQUEUE_STREAM's layout): its groups oldest fire_ts first, so
        each schedule's fires stay oldest first, then the three columns in group order."""
        head: list[object] = [len(groups)]
        names: list[str] = []
        jobs: list[str] = []
        args: list[str] = []
        order: list[int] = []
        for key in sorted(groups):
            fire_ts, index, trigger = key
            group = groups[key]
            head += (index, group.queue, trigger, fire_ts, len(group.names))
            names += group.names
            jobs += group.jobs
            args += group.args
            order += group.positions
        queue_key = self._keys.queue
        calls.append(
            EnqueueCall([queue_key(q) for q in streams], [*head, *names, *jobs, *args], count)
        )
        orders.append(order)


class _Group:
    """The fires of one call that share a fire_ts, a stream and a trigger."""

    __slots__ = ("args", "jobs", "names", "positions", "queue")

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.names: list[str] = []
        self.jobs: list[str] = []
        self.args: list[str] = []
        self.positions: list[int] = []
