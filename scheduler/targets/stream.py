"""The default target: one Redis Stream per queue, entries as DESIGN's "run" table says."""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.keys import Keys
from scheduler.scripts import Scripts
from scheduler.targets import DueFire, Lease, Outcome
from scheduler.timefmt import rfc3339_utc

# Bounds Redis's time inside one script call (it blocks every other client meanwhile).
MAX_FIRES_PER_CALL = 500

_CODES = {1: Outcome.ENQUEUED, 0: Outcome.DUPLICATE, 2: Outcome.PAUSED}


def run_id(schedule: str, fire_time: str) -> str:
    """The idempotency key workers see: a pure function of schedule and fire time."""
    return f"{schedule}@{fire_time}"


class StreamTarget:
    def __init__(self, scripts: Scripts, keys: Keys) -> None:
        self._scripts = scripts
        self._keys = keys

    def enqueue(self, lease: Lease, fires: Sequence[DueFire], enqueued_at: str) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, len(fires), MAX_FIRES_PER_CALL):
            chunk = fires[start : start + MAX_FIRES_PER_CALL]
            codes = self._call(lease, chunk, enqueued_at)
            if codes == [-1]:
                # Fenced: this call wrote nothing, and no later chunk may be tried.
                outcomes.extend([Outcome.FENCED] * (len(fires) - start))
                break
            outcomes.extend(_CODES[code] for code in codes)
        return outcomes

    def _call(self, lease: Lease, fires: Sequence[DueFire], enqueued_at: str) -> list[int]:
        stream_index: dict[str, int] = {}
        args: list[str | int] = []
        for fire in fires:
            schedule = fire.schedule
            index = stream_index.setdefault(schedule.queue, len(stream_index) + 1)
            fire_time = rfc3339_utc(fire.fire_ts)
            args += (
                index,
                schedule.name,
                fire.fire_ts,
                run_id(schedule.name, fire_time),
                schedule.job,
                schedule.args_json,
                schedule.queue,
                fire_time,
                f"{enqueued_at}|{fire.trigger.value}",
            )
        streams = [self._keys.queue(queue) for queue in stream_index]
        return self._scripts.enqueue_stream(
            lease.value, lease.token, lease.replica_id, streams, args, len(fires)
        )
