"""What is due, and when, for the schedules a leader serves: a heap keyed by next due time.

Pure: no clock or Redis here; `now` (Redis time, float seconds) is passed in. The daemon asks
`due(now)` for a batch, writes it, then `settle`s the outcome or `requeue`s the batch if the write
failed, so a schedule only moves forward once Redis has accepted its runs. The hand-over is
all-or-nothing: a batch that was neither settled nor requeued (the caller failed in between) is
requeued by the next `due()`, never dropped, and never settled without its write.

Schedules that come due at the same instant share one heap entry (a bucket), and schedules that
share a timeline and a position share one plan: ten thousand `every: 1s` schedules cost one heap
operation and one plan per second, plus a few dictionary operations each.

Bucket entries carry the generation of their schedule's state; a reload that changes or removes
a schedule bumps or drops the state, and its stale entries are skipped when they surface.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from scheduler.core.bulk import collector_paused
from scheduler.core.catchup import LATE_AFTER_S, Plan, plan
from scheduler.core.runs import DueFire, Trigger
from scheduler.core.schedule import Schedule
from scheduler.core.timeline import jitter_ms

# (due at, fire time): one heap entry per distinct instant
_Slot = tuple[float, int]
# (schedule name, state generation): one bucket entry per schedule
_Entry = tuple[str, int]


@dataclass(slots=True)  # one per schedule served: 100,000 of them
class _State:
    schedule: Schedule
    after: int  # every fire up to here is decided
    generation: int
    next_fire: int | None = None


# How often due() asks its budget whether to stop, in schedules planned: often enough to stop
# within a few milliseconds, rarely enough to cost nothing next to the planning itself.
_BUDGET_EVERY = 64


@dataclass
class Batch:
    fires: list[DueFire] = field(default_factory=list)
    misfired: dict[str, int] = field(default_factory=dict)  # schedule -> dropped fires
    disabled: dict[str, int] = field(default_factory=dict)  # schedule -> fires not run
    # The budget ran out: more is due now; ask again on the next turn.
    partial: bool = False


@dataclass(frozen=True)
class Changes:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    # Schedules that (re)start from `now` (added, re-enabled, or with a new timeline): their
    # cursor must be raised to that position in Redis too, or a new leader would catch up the
    # fires this one decided not to run.
    restarted: Mapping[str, int] = field(default_factory=dict)


def same_timeline(a: Schedule, b: Schedule) -> bool:
    """Whether two versions of a schedule fire at the same times (job or args may differ)."""
    return (a.kind, a.spec, a.timezone, a.start_ts, a.end_ts) == (
        b.kind,
        b.spec,
        b.timezone,
        b.start_ts,
        b.end_ts,
    )


class Ticker:
    def __init__(self, schedules: Iterable[Schedule], late_after_s: float = LATE_AFTER_S) -> None:
        self._schedules = {s.name: s for s in schedules}
        self._late_after_s = late_after_s
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
        with collector_paused():  # a state and an entry per schedule, no cycles (bulk.py)
            for schedule in self._schedules.values():
                after = cursors.get(schedule.name, start_from)
                key = (id(schedule.timeline), after)
                if key not in known:
                    known[key] = schedule.timeline.next_after(after)
                fire = known[key]
                # Only a missed fire goes out at once; an upcoming one keeps its jitter, or
                # every takeover would send the herd jitter is there to spread.
                self._add_at(schedule, after, fire, catching_up=fire is not None and fire < now)

    def unseen(self, cursors: Mapping[str, int]) -> dict[str, int]:
        """Enabled schedules without a cursor, and the position they start from: recorded in
        Redis at once, so that their first fire survives a leader change before it."""
        return {
            name: state.after
            for name, state in self._states.items()
            if name not in cursors and state.schedule.enabled
        }

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
        """Swap in a new config: added and re-enabled schedules start from now, and so do those
        whose timeline changed (the new timeline's past is not theirs to catch up); changed
        ones keep their position; removed ones stop at once. Call it with no batch in hand."""
        new = {s.name: s for s in schedules}
        old = self._schedules
        self._schedules = new
        added = tuple(sorted(n for n in new if n not in old))
        removed = tuple(sorted(n for n in old if n not in new))
        changed = tuple(sorted(n for n in new if n in old and new[n] != old[n]))
        if not self._states:  # not serving (a follower): nothing to move
            return Changes(added, removed, changed)
        self.requeue()
        for name in removed:
            self._states.pop(name, None)
        start_from = math.floor(now)
        restarted: dict[str, int] = {}
        for name in added:
            self._add(new[name], start_from, catching_up=False)
            if new[name].enabled:
                restarted[name] = start_from
        for name in changed:
            state = self._states.get(name)
            re_enabled = new[name].enabled and not old[name].enabled
            retimed = not same_timeline(new[name], old[name])
            if state is None or re_enabled or retimed:
                after = start_from if state is None else max(state.after, start_from)
                if new[name].enabled:
                    restarted[name] = after
            else:
                after = state.after
            self._add(new[name], after, catching_up=False)
        return Changes(added, removed, changed, restarted)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def next_size(self) -> int:
        """How many schedules come due at the next instant (stale entries included)."""
        return len(self._buckets[self._heap[0]]) if self._heap else 0

    def next_fire_of(self, name: str) -> int | None:
        state = self._states.get(name)
        return state.next_fire if state is not None else None

    def due(self, now: float, over_budget: Callable[[], bool] | None = None) -> Batch:
        """Pop and plan everything due by `now`; fires come grouped by schedule, in fire-time
        order within one. `over_budget` (asked every few dozen schedules) cuts the batch short:
        the rest stays due, `partial` says so, and the caller's loop keeps turning meanwhile.

        A batch still in hand from the last call (neither settled nor requeued: its write
        failed before it could say) is requeued first, so its schedules are planned again."""
        self.requeue()
        batch = Batch()
        plans: dict[tuple[int, int, str, int, int], Plan] = {}
        on_time_from = self._on_time_from
        states = self._states
        fires = batch.fires
        planned = 0
        while self._heap and self._heap[0][0] <= now:
            slot = heapq.heappop(self._heap)
            bucket = self._buckets.pop(slot)
            for index, entry in enumerate(bucket):
                planned += 1
                if over_budget is not None and planned % _BUDGET_EVERY == 0 and over_budget():
                    self._refile(slot, bucket[index:])
                    batch.partial = True
                    return batch
                state = states.get(entry[0])
                if state is None or state.generation != entry[1]:
                    continue  # removed or changed by a reload since it was filed
                schedule = state.schedule
                # Schedules sharing a timeline (config interns equal ones) and a position share
                # a plan: computed once for all of them.
                timeline = schedule.timeline
                window_s = schedule.catchup_window_s
                key = (id(timeline), state.after, schedule.catchup, window_s, schedule.jitter_s)
                result = plans.get(key)
                if result is None:
                    result = plans[key] = plan(
                        timeline,
                        state.after,
                        now,
                        on_time_from,
                        schedule.catchup,
                        window_s,
                        # Jitter delays a fire on purpose; only a delay beyond it is lateness.
                        late_after_s=min(self._late_after_s, window_s) + schedule.jitter_s,
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

    def settle(self, held: Collection[str] = (), retry_at: float = 0.0) -> None:
        """Redis accepted the last batch (enqueued, duplicate or paused): move on. Schedules in
        `held` were refused (their queue cannot take runs): they stay where they were and come
        due again at `retry_at`."""
        on_time_from = self._on_time_from
        for name, (result, slot, generation) in self._pending.items():
            state = self._states.get(name)
            if state is None or state.generation != generation:
                continue
            if name in held:
                self._file((max(retry_at, slot[0]), slot[1]), (name, generation))
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

    def _refile(self, slot: _Slot, entries: list[_Entry]) -> None:
        for entry in entries:
            self._file(slot, entry)
