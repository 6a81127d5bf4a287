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
    counts: list[int]  # fires per command


def run_id(schedule: str, fire_time: str) -> str:
    """The idempotency key workers see: a pure function of schedule and fire time."""
    return f"{schedule}@{fire_time}"


class StreamTarget:
    def __init__(self, scripts: Scripts, keys: Keys) -> None:
        self._scripts = scripts
        self._keys = keys

    def prepare(self, lease: Lease, fires: Sequence[DueFire], at: float = 0.0) -> PreparedStream:
        calls = self._calls(fires)
        commands = self._scripts.enqueue_commands(lease, calls)
        return PreparedStream(fires, commands, [call.count for call in calls])

    def send(self, prepared: Prepared) -> Written:
        assert isinstance(prepared, PreparedStream)
        replies = self._scripts.run_enqueue(prepared.commands)
        outcomes: list[Outcome] = []
        times: list[float] = []
        for count, reply in zip(prepared.counts, replies, strict=True):
            if reply.fenced:
                outcomes.extend([Outcome.FENCED] * count)
                times.extend([0.0] * count)
            else:
                outcomes.extend(_CODES[code] for code in reply.codes)
                times.extend([reply.enqueued_at_s] * count)
        return Written(outcomes, times)

    def refusal(self, queue: str) -> str | None:
        return None

    def enqueue(self, lease: Lease, fires: Sequence[DueFire]) -> Written:
        return self.send(self.prepare(lease, fires))

    def _calls(self, fires: Sequence[DueFire]) -> list[EnqueueCall]:
        """Script calls of up to MAX_FIRES_PER_CALL fires. A schedule's fires never straddle two
        calls: each call is atomic, so a schedule's cursor moves all-or-nothing in one."""
        queue_key = self._keys.queue
        calls: list[EnqueueCall] = []
        limit = FIRST_CALL_FIRES
        streams: dict[str, int] = {}
        args: list[object] = []
        count = 0
        previous = None
        for schedule, fire_ts, trigger in fires:
            if count >= limit and schedule is not previous:
                calls.append(EnqueueCall([queue_key(q) for q in streams], args, count))
                streams, args, count, limit = {}, [], 0, MAX_FIRES_PER_CALL
            previous = schedule
            queue = schedule.queue
            index = streams.get(queue)
            if index is None:
                index = streams[queue] = len(streams) + 1
            args += (
                index,
                schedule.name,
                schedule.job,
                schedule.args_json,
                queue,
                fire_ts,
                trigger.value,
            )
            count += 1
        if count:
            calls.append(EnqueueCall([queue_key(q) for q in streams], args, count))
        return calls
