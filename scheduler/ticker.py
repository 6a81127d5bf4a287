"""What is due, and when, for the schedules a leader serves: a heap keyed by next due time.

Pure: no clock or Redis here; `now` (Redis time, float seconds) is passed in. The daemon asks
`due(now)` for a batch, writes it, then `settle`s the outcome or `requeue`s the batch if the write
failed, so a schedule only moves forward once Redis has accepted its runs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scheduler.catchup import Plan, plan
from scheduler.config import Schedule
from scheduler.targets import DueFire, Trigger
from scheduler.timeline import jitter_ms


@dataclass
class _State:
    schedule: Schedule
    after: int  # every fire up to here is decided


@dataclass(frozen=True)
class Misfire:
    schedule: str
    count: int


class Ticker:
    def __init__(self, schedules: Iterable[Schedule]) -> None:
        self._schedules = [s for s in schedules if s.enabled]
        self._states: dict[str, _State] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._pending: dict[str, tuple[Plan, tuple[float, int, str]]] = {}
        self._on_time_from = 0.0

    def start(self, cursors: Mapping[str, int], now: float) -> None:
        """Begin serving from Redis's cursors; a schedule without one starts from now."""
        self._on_time_from = now
        self._heap = []
        self._pending = {}
        self._states = {}
        start_from = math.floor(now)
        for schedule in self._schedules:
            after = cursors.get(schedule.name, start_from)
            self._states[schedule.name] = _State(schedule, after)
            self._push(schedule, schedule.timeline.next_after(after), catching_up=True)

    def _push(self, schedule: Schedule, fire: int | None, catching_up: bool = False) -> None:
        if fire is None:
            return
        delay_s = 0.0 if catching_up else jitter_ms(schedule.name, fire, schedule.jitter_s) / 1000
        heapq.heappush(self._heap, (fire + delay_s, fire, schedule.name))

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)

    def due(self, now: float) -> tuple[list[DueFire], list[Misfire]]:
        """Pop and plan everything due by `now`; fires come in fire-time order per schedule."""
        fires: list[DueFire] = []
        misfires: list[Misfire] = []
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            state = self._states[entry[2]]
            schedule = state.schedule
            result = plan(
                schedule.timeline,
                state.after,
                now,
                self._on_time_from,
                schedule.catchup,
                schedule.catchup_window_s,
            )
            if result.misfired:
                misfires.append(Misfire(schedule.name, result.misfired))
            fires.extend(DueFire(schedule, ts, Trigger.CATCHUP) for ts in result.catchup)
            fires.extend(DueFire(schedule, ts, Trigger.SCHEDULED) for ts in result.scheduled)
            self._pending[schedule.name] = (result, entry)
        return fires, misfires

    def settle(self) -> None:
        """Redis accepted the last batch (enqueued, duplicate or paused): move on."""
        for name, (result, _) in self._pending.items():
            state = self._states[name]
            state.after = result.handled_through
            catching_up = result.next_fire is not None and result.next_fire < self._on_time_from
            self._push(state.schedule, result.next_fire, catching_up)
        self._pending = {}

    def requeue(self) -> None:
        """The last batch was not written: put its schedules back, unchanged."""
        for _, entry in self._pending.values():
            heapq.heappush(self._heap, entry)
        self._pending = {}
