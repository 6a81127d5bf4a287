"""What is due, and when, for the schedules a leader serves: a heap keyed by next due time.

Pure: no clock or Redis here; `now` (Redis time, float seconds) is passed in. The daemon asks
`due(now)` for a batch, writes it, then `settle`s the outcome or `requeue`s the batch if the write
failed, so a schedule only moves forward once Redis has accepted its runs.

Schedules that come due at the same instant share one heap entry (a bucket), and schedules that
share a timeline and a position share one plan: ten thousand `every: 1s` schedules cost one heap
operation and one plan per second, plus a few dictionary operations each.

Bucket entries carry the generation of their schedule's state; a reload that changes or removes
a schedule bumps or drops the state, and its stale entries are skipped when they surface.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from scheduler.catchup import Plan, plan
from scheduler.config import Schedule
from scheduler.targets import DueFire, Trigger
from scheduler.timeline import jitter_ms

# (due at, fire time): one heap entry per distinct instant
_Slot = tuple[float, int]
# (schedule name, state generation): one bucket entry per schedule
_Entry = tuple[str, int]


@dataclass
class _State:
    schedule: Schedule
    after: int  # every fire up to here is decided
    generation: int
    next_fire: int | None = None


@dataclass
class Batch:
    fires: list[DueFire] = field(default_factory=list)
    misfired: dict[str, int] = field(default_factory=dict)  # schedule -> dropped fires
    disabled: dict[str, int] = field(default_factory=dict)  # schedule -> fires not run


@dataclass(frozen=True)
class Changes:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]


class Ticker:
    def __init__(self, schedules: Iterable[Schedule]) -> None:
        self._schedules = {s.name: s for s in schedules}
        self._states: dict[str, _State] = {}
        self._heap: list[_Slot] = []
        self._buckets: dict[_Slot, list[_Entry]] = {}
        self._pending: dict[str, tuple[Plan, _Slot, int]] = {}
        self._on_time_from = 0.0
        self._generation = 0

    def start(self, cursors: Mapping[str, int], now: float) -> None:
        """Begin serving from Redis's cursors; a schedule without one starts from now."""
        self._on_time_from = now
        self._heap = []
        self._buckets = {}
        self._pending = {}
        self._states = {}
        start_from = math.floor(now)
        # Shared timelines at a shared position have one next fire: 100,000 schedules on a
        # few expressions cost a few cron computations here, not 100,000.
        known: dict[tuple[int, int], int | None] = {}
        for schedule in self._schedules.values():
            after = cursors.get(schedule.name, start_from)
            key = (id(schedule.timeline), after)
            if key not in known:
                known[key] = schedule.timeline.next_after(after)
            self._add_at(schedule, after, known[key], catching_up=True)

    def _add(self, schedule: Schedule, after: int, catching_up: bool) -> None:
        self._add_at(schedule, after, schedule.timeline.next_after(after), catching_up)

    def _add_at(
        self, schedule: Schedule, after: int, next_fire: int | None, catching_up: bool
    ) -> None:
        self._generation += 1
        state = _State(schedule, after, self._generation)
        self._states[schedule.name] = state
        self._push(state, next_fire, catching_up)

    def _push(self, state: _State, fire: int | None, catching_up: bool = False) -> None:
        state.next_fire = fire
        if fire is None:
            return
        schedule = state.schedule
        delay_s = 0.0
        if schedule.jitter_s and not catching_up:
            delay_s = jitter_ms(schedule.name, fire, schedule.jitter_s) / 1000
        self._file((fire + delay_s, fire), (schedule.name, state.generation))

    def _file(self, slot: _Slot, entry: _Entry) -> None:
        bucket = self._buckets.get(slot)
        if bucket is None:
            self._buckets[slot] = [entry]
            heapq.heappush(self._heap, slot)
        else:
            bucket.append(entry)

    def reconfigure(self, schedules: Iterable[Schedule], now: float) -> Changes:
        """Swap in a new config: added (or re-enabled) schedules start from now, changed ones
        keep their position, removed ones stop at once."""
        new = {s.name: s for s in schedules}
        old = self._schedules
        self._schedules = new
        added = tuple(sorted(n for n in new if n not in old))
        removed = tuple(sorted(n for n in old if n not in new))
        changed = tuple(sorted(n for n in new if n in old and new[n] != old[n]))
        if not self._states:  # not serving (a follower): nothing to move
            return Changes(added, removed, changed)
        for name in removed:
            self._states.pop(name, None)
            self._pending.pop(name, None)
        start_from = math.floor(now)
        for name in added:
            self._add(new[name], start_from, catching_up=False)
        for name in changed:
            state = self._states.get(name)
            re_enabled = new[name].enabled and not old[name].enabled
            after = start_from if re_enabled or state is None else state.after
            self._pending.pop(name, None)
            self._add(new[name], after, catching_up=False)
        return Changes(added, removed, changed)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def next_size(self) -> int:
        """How many schedules come due at the next instant (stale entries included)."""
        return len(self._buckets[self._heap[0]]) if self._heap else 0

    def next_fire_of(self, name: str) -> int | None:
        state = self._states.get(name)
        return state.next_fire if state is not None else None

    def due(self, now: float) -> Batch:
        """Pop and plan everything due by `now`; fires come grouped by schedule, in fire-time
        order within one."""
        batch = Batch()
        plans: dict[tuple[int, int, str, int], Plan] = {}
        on_time_from = self._on_time_from
        states = self._states
        fires = batch.fires
        while self._heap and self._heap[0][0] <= now:
            slot = heapq.heappop(self._heap)
            for entry in self._buckets.pop(slot):
                state = states.get(entry[0])
                if state is None or state.generation != entry[1]:
                    continue  # removed or changed by a reload since it was filed
                schedule = state.schedule
                # Schedules sharing a timeline (config interns equal ones) and a position share
                # a plan: computed once for all of them.
                timeline = schedule.timeline
                key = (id(timeline), state.after, schedule.catchup, schedule.catchup_window_s)
                result = plans.get(key)
                if result is None:
                    result = plans[key] = plan(
                        timeline,
                        state.after,
                        now,
                        on_time_from,
                        schedule.catchup,
                        schedule.catchup_window_s,
                    )
                if result.misfired:
                    batch.misfired[schedule.name] = result.misfired
                if not schedule.enabled:
                    # Followed but never written, so that metrics can say what did not run.
                    batch.disabled[schedule.name] = len(result.due)
                else:
                    for ts in result.catchup:
                        fires.append(DueFire(schedule, ts, Trigger.CATCHUP))
                    for ts in result.scheduled:
                        fires.append(DueFire(schedule, ts, Trigger.SCHEDULED))
                self._pending[schedule.name] = (result, slot, entry[1])
        return batch

    def settle(self) -> None:
        """Redis accepted the last batch (enqueued, duplicate or paused): move on."""
        on_time_from = self._on_time_from
        for name, (result, _, generation) in self._pending.items():
            state = self._states.get(name)
            if state is None or state.generation != generation:
                continue
            state.after = result.handled_through
            nxt = result.next_fire
            self._push(state, nxt, nxt is not None and nxt < on_time_from)
        self._pending = {}

    def requeue(self) -> None:
        """The last batch was not written: put its schedules back, unchanged."""
        for name, (_, slot, generation) in self._pending.items():
            self._file(slot, (name, generation))
        self._pending = {}
