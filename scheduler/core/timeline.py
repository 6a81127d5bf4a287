"""The fire-time engine: when does a schedule fire. Pure: no clock, no I/O; instants are passed in.

Fire times are whole Unix seconds. Every timeline answers three questions, all bounded by the
schedule's optional `start`/`end` (both inclusive):

- `next_after(t)`: the first fire strictly after t;
- `prev_before(t)`: the last fire strictly before t;
- `count_between(a, b, limit)`: how many fires f with a < f < b, counting at most `limit`.

Cron follows Debian's cron(8) (DESIGN "Time"). cronwall.py finds the matching wall times; this
module maps them to instants by the job's kind (cronexpr.is_wildcard_job):

- a WILDCARD job fires at every instant whose wall time matches: none for a wall time a jump
  forward skips, two for one a jump back repeats;
- a FIXED-TIME job fires once per matching wall time: at its only instant, at the first of two,
  or, for a skipped one, at the first instant after the gap (several collapse into one fire).

Both use PEP 495: a wall time read with fold=0 and fold=1 gives one instant when it exists once,
two (in order) when it is repeated, and two in reverse order when it lies in a gap.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.cronexpr import CronSpec
from scheduler.core.cronwall import DAY_S, FIRST_DAY, LAST_DAY, next_wall, prev_wall


class Timeline(ABC):
    """Fire times of one schedule, bounded by `start_ts`/`end_ts` (inclusive, optional)."""

    def __init__(self, start_ts: int | None = None, end_ts: int | None = None) -> None:
        self.start_ts = start_ts
        self.end_ts = end_ts

    @abstractmethod
    def _next_after(self, ts: int) -> int | None: ...

    @abstractmethod
    def _prev_before(self, ts: int) -> int | None: ...

    @property
    @abstractmethod
    def shortest_interval_s(self) -> int | None:
        """A lower bound on the gap between fires; None for a one-shot."""

    def next_after(self, ts: int) -> int | None:
        if self.start_ts is not None and ts < self.start_ts:
            ts = self.start_ts - 1
        fire = self._next_after(ts)
        if fire is None or (self.end_ts is not None and fire > self.end_ts):
            return None
        return fire

    def prev_before(self, ts: int) -> int | None:
        if self.end_ts is not None and ts > self.end_ts:
            ts = self.end_ts + 1
        fire = self._prev_before(ts)
        if fire is None or (self.start_ts is not None and fire < self.start_ts):
            return None
        return fire

    def count_between(self, after: int, before: int, limit: int) -> int:
        """Fires f with after < f < before, at most `limit` of them counted."""
        count = 0
        fire = self.next_after(after)
        while fire is not None and fire < before and count < limit:
            count += 1
            fire = self.next_after(fire)
        return count

    def upcoming(self, after: int, count: int) -> list[int]:
        """The next `count` fires strictly after `after` (fewer if the timeline ends)."""
        fires: list[int] = []
        fire = self.next_after(after)
        while fire is not None and len(fires) < count:
            fires.append(fire)
            fire = self.next_after(fire)
        return fires


_NAIVE_EPOCH = datetime(1970, 1, 1)
# How far ahead (behind) a jump back may lie whose repeated wall times a wildcard job's next
# (previous) fire could be in: more than tzdb's largest shift (2h, Antarctica/Troll).
_SHIFT_HORIZON_S = 3 * 3600
# Instants whose wall time stays inside the calendar whatever the zone.
_FIRST_TS = FIRST_DAY * DAY_S + 2 * DAY_S
_LAST_TS = LAST_DAY * DAY_S - 2 * DAY_S


class CronTimeline(Timeline):
    def __init__(
        self,
        spec: CronSpec,
        zone: ZoneInfo,
        start_ts: int | None = None,
        end_ts: int | None = None,
    ) -> None:
        super().__init__(start_ts, end_ts)
        self.spec = spec
        self.zone = zone

    @property
    def shortest_interval_s(self) -> int:
        return self.spec.shortest_interval_s

    # -- wall time <-> instants ------------------------------------------------------------

    def _offset_s(self, ts: int) -> int:
        offset = datetime.fromtimestamp(ts, self.zone).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    def _readings(self, wall: int) -> tuple[int, int]:
        """A wall time read with fold=0 and fold=1, as instants (PEP 495): equal when it exists
        once; (first, second) when it is repeated; (after the gap, before it) when skipped."""
        naive = _NAIVE_EPOCH + timedelta(seconds=wall)
        return (
            int(naive.replace(tzinfo=self.zone).timestamp()),
            int(naive.replace(tzinfo=self.zone, fold=1).timestamp()),
        )

    def _shift_at(self, lo: int, hi: int) -> int:
        """The first instant in (lo, hi] whose offset differs from lo's (one change assumed)."""
        before = self._offset_s(lo)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offset_s(mid) == before:
                lo = mid
            else:
                hi = mid
        return hi

    def _fixed_fire(self, wall: int) -> int:
        """The one fire of a fixed-time job that a matching wall time stands for."""
        first, second = self._readings(wall)
        if first <= second:  # exists once, or repeated: its first occurrence
            return first
        return self._shift_at(second, first)  # skipped: the first instant after the gap

    def _first_reading(self, wall: int, ts: int, offset: timedelta | None) -> int | None:
        """The commonest case, in one conversion: `wall` read with ts's `offset` is an instant
        after ts that reads `wall` and no instant before it does. None: ask `_readings`."""
        guess = wall - int(offset.total_seconds()) if offset is not None else wall
        if guess <= ts:
            return None
        local = datetime.fromtimestamp(guess, self.zone)
        return guess if local.utcoffset() == offset and not local.fold else None

    def _repeat_around(self, ts: int, wall: int) -> _Repeat:
        """The repeated interval whose second run `ts` (reading `wall`) lies in."""
        first = self._readings(wall)[0]
        return _Repeat(self._shift_at(first, ts), self._offset_s(first), self._offset_s(ts))

    def _repeat_ahead(self, ts: int, offset_s: int) -> _Repeat | None:
        """A jump back within the horizon after ts (whose offset is `offset_s`), if any."""
        later = ts + _SHIFT_HORIZON_S
        later_s = self._offset_s(later)
        if later_s >= offset_s:
            return None
        return _Repeat(self._shift_at(ts, later), offset_s, later_s)

    # -- the two questions -----------------------------------------------------------------

    def _next_after(self, ts: int) -> int | None:
        ts = max(ts, _FIRST_TS)
        if ts >= _LAST_TS:
            return None
        local = datetime.fromtimestamp(ts, self.zone)
        offset = local.utcoffset()
        offset_s = int(offset.total_seconds()) if offset is not None else 0
        wall = ts + offset_s
        spec = self.spec
        if not spec.wildcard:
            # A matching wall time's fire comes later than ts exactly when the wall time does,
            # except inside the second run of a repeated interval, whose wall times have fired.
            cursor = wall + 1 if not local.fold else self._repeat_around(ts, wall).end_wall
            while (match := next_wall(spec, cursor)) is not None:
                if (guess := self._first_reading(match, ts, offset)) is not None:
                    return guess
                fire = self._fixed_fire(match)
                if fire > ts:
                    return fire
                cursor = match + 1
            return None
        # A wildcard job also fires at the second reading of repeated wall times: of those
        # still to come a second time, the first one.
        again: int | None = None
        cursor = wall + 1
        repeat = self._repeat_around(ts, wall) if local.fold else self._repeat_ahead(ts, offset_s)
        if repeat is not None:
            pending = max(repeat.start_wall, cursor) if local.fold else repeat.start_wall
            match = next_wall(spec, pending)
            if match is not None and match < repeat.end_wall:
                again = match - repeat.after_s
                if local.fold:  # it comes before any wall time past the interval
                    return again
            if local.fold:
                cursor = repeat.end_wall
        # Past that, wall times come in the order of their first readings: the first matching
        # one that exists is the next fire (or the repeated one found above, if earlier).
        while (match := next_wall(spec, cursor)) is not None:
            found = self._first_reading(match, ts, offset)
            if found is None:
                first, second = self._readings(match)
                if second >= first > ts:  # exists, and comes after ts
                    found = first
            if found is not None:
                return found if again is None else min(found, again)
            cursor = match + 1
        return again

    def _prev_before(self, ts: int) -> int | None:
        last = min(ts - 1, _LAST_TS)
        if last < _FIRST_TS:
            return None
        local = datetime.fromtimestamp(last, self.zone)
        offset = local.utcoffset()
        wall = last + (int(offset.total_seconds()) if offset is not None else 0)
        spec = self.spec
        repeat = self._repeat_around(last, wall) if local.fold else None
        if not spec.wildcard:
            # Instants up to `last` read wall times up to `wall`, except inside the second run
            # of a repeated interval: the rest of its first run came earlier.
            cursor = wall if repeat is None else repeat.end_wall - 1
            while (match := prev_wall(spec, cursor)) is not None:
                fire = self._fixed_fire(match)
                if fire < ts:
                    return fire
                cursor = match - 1
            return None
        cursor = wall
        if repeat is not None:
            # Inside the second run: its matching wall times up to `wall` came last, then the
            # first run's, then what came before the interval.
            match = prev_wall(spec, wall)
            if match is not None and match >= repeat.start_wall:
                return match - repeat.after_s
            match = prev_wall(spec, repeat.end_wall - 1)
            if match is not None and match >= repeat.start_wall:
                return match - repeat.before_s
            cursor = repeat.start_wall - 1
        # Wall times up to here come in the order of their last readings before ts.
        while (match := prev_wall(spec, cursor)) is not None:
            first, second = self._readings(match)
            if first <= second and first < ts:  # exists, and came before ts
                return second if second < ts else first
            cursor = match - 1
        return None


@dataclass(frozen=True)
class _Repeat:
    """A jump back: from `shift` on, the wall times of [start_wall, end_wall) come again."""

    shift: int  # the first instant of the new, lower offset
    before_s: int  # the offset before it
    after_s: int  # the offset from it on

    @property
    def start_wall(self) -> int:
        return self.shift + self.after_s

    @property
    def end_wall(self) -> int:
        return self.shift + self.before_s


class EveryTimeline(Timeline):
    """Every `interval_s` seconds, aligned to `start` if given, else to the Unix epoch."""

    def __init__(self, interval_s: int, start_ts: int | None = None, end_ts: int | None = None):
        super().__init__(start_ts, end_ts)
        self.interval_s = interval_s
        self.anchor = start_ts if start_ts is not None else 0

    @property
    def shortest_interval_s(self) -> int:
        return self.interval_s

    def _next_after(self, ts: int) -> int | None:
        return self.anchor + ((ts - self.anchor) // self.interval_s + 1) * self.interval_s

    def _prev_before(self, ts: int) -> int | None:
        return self.anchor + ((ts - 1 - self.anchor) // self.interval_s) * self.interval_s

    def count_between(self, after: int, before: int, limit: int) -> int:
        first = self.next_after(after)
        last = self.prev_before(before)
        if first is None or last is None or last < first:
            return 0
        return min(limit, (last - first) // self.interval_s + 1)


class AtTimeline(Timeline):
    """One shot at `at_ts`."""

    def __init__(self, at_ts: int, start_ts: int | None = None, end_ts: int | None = None):
        super().__init__(start_ts, end_ts)
        self.at_ts = at_ts

    @property
    def shortest_interval_s(self) -> None:
        return None

    def _next_after(self, ts: int) -> int | None:
        return self.at_ts if self.at_ts > ts else None

    def _prev_before(self, ts: int) -> int | None:
        return self.at_ts if self.at_ts < ts else None


def jitter_ms(name: str, fire_ts: int, bound_s: int) -> int:
    """A delay in [0, bound_s) milliseconds that every replica derives alike for this fire."""
    if bound_s <= 0:
        return 0
    digest = hashlib.blake2b(f"{name}@{fire_ts}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (bound_s * 1000)
