"""The fire-time engine: when does a schedule fire. Pure: no clock, no I/O; instants are passed in.

Fire times are whole Unix seconds. Every timeline answers three questions, all bounded by the
schedule's optional `start`/`end` (both inclusive):

- `next_after(t)`: the first fire strictly after t;
- `prev_before(t)`: the last fire strictly before t;
- `count_between(a, b, limit)`: how many fires f with a < f < b, counting at most `limit`.

DST follows classic cron (see DESIGN "Time"). croniter's own DST handling does not: it drops gap
fires when the hour field is `*`, keeps the seconds when it collapses one (03:00:30 for
`30 30 2 * * *`), and fires fixed-hour jobs in both occurrences of a repeated hour. So croniter
only walks wall-clock time here (as if in UTC, where nothing is skipped or repeated), and this
module maps each matching wall time to instants: a wall time in a gap becomes the first instant
after the gap (several collapse into one fire); a repeated wall time becomes its first occurrence,
plus the second one when the hour field is `*` or a step.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError

from scheduler.core.cronexpr import CronSpec


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


# Wall-clock times are handled as "wall seconds": the local date and time read as if it were UTC.
_NAIVE_EPOCH = datetime(1970, 1, 1)
# The largest DST shift we look around for (tzdb's largest is 2h, Antarctica/Troll).
_SHIFT_HORIZON_S = 3 * 3600


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
        # One croniter per timeline, re-pointed with start_time: parsing costs more than a step.
        # It runs in UTC over wall seconds, so it never applies DST rules of its own.
        self._iter = spec.wall_iter()

    @property
    def shortest_interval_s(self) -> int:
        return self.spec.shortest_interval_s

    # -- wall time <-> instants ------------------------------------------------------------

    def _offset_s(self, ts: int) -> int:
        offset = datetime.fromtimestamp(ts, self.zone).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    def _wall(self, ts: int) -> int:
        return ts + self._offset_s(ts)

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

    def _instants(self, wall: int) -> tuple[int, ...]:
        """The fires one matching wall time stands for, in order (DESIGN "Time")."""
        naive = _NAIVE_EPOCH + timedelta(seconds=wall)
        first = int(naive.replace(tzinfo=self.zone).timestamp())
        second = int(naive.replace(tzinfo=self.zone, fold=1).timestamp())
        if first == second:
            return (first,)
        if first < second:  # a repeated wall time: fixed-hour schedules skip the second one
            return (first, second) if self.spec.wildcard_hour else (first,)
        # A wall time in a gap (PEP 495 maps it to both sides): the first instant after the gap.
        return (self._shift_at(second, first),)

    def _step(self, wall: int, forward: bool) -> int | None:
        """The next (previous) matching wall time strictly after (before) `wall`."""
        try:
            if forward:
                return int(self._iter.get_next(float, start_time=float(wall)))
            return int(self._iter.get_prev(float, start_time=float(wall)))
        except CroniterBadDateError:
            return None

    # -- the two questions -----------------------------------------------------------------

    def _next_after(self, ts: int) -> int | None:
        wall_ts = self._wall(ts)
        # Instants after ts read wall times after wall_ts, except the second occurrence of an
        # hour about to repeat: those wall times lie at or before wall_ts.
        repeat_fire: int | None = None
        later = ts + _SHIFT_HORIZON_S
        if self.spec.wildcard_hour and self._offset_s(later) < self._offset_s(ts):
            shift = self._shift_at(ts, later)
            repeat_from = self._wall(shift)  # the first repeated wall time
            if repeat_from <= wall_ts:
                wall = self._step(repeat_from - 1, forward=True)
                if wall is not None and wall <= wall_ts:
                    repeat_fire = wall - self._offset_s(shift)
        cursor = wall_ts
        while (wall := self._step(cursor, forward=True)) is not None:
            if wall <= cursor:  # never seen; guards the loop should croniter not move forward
                cursor += 1
                continue
            fires = [fire for fire in self._instants(wall) if fire > ts]
            if fires:
                return min([*fires, repeat_fire] if repeat_fire is not None else fires)
            cursor = wall
        return repeat_fire

    def _prev_before(self, ts: int) -> int | None:
        wall_last = self._wall(ts - 1)
        # Instants before ts read wall times up to wall_last, except the first occurrence of an
        # hour that has just repeated: those wall times lie after wall_last.
        first_fire: int | None = None
        earlier = ts - 1 - _SHIFT_HORIZON_S
        if self._offset_s(earlier) > self._offset_s(ts - 1):
            shift = self._shift_at(earlier, ts - 1)
            repeat_until = self._wall(shift - 1) + 1  # just after the last repeated wall time
            if repeat_until - 1 > wall_last:
                wall = self._step(repeat_until, forward=False)
                if wall is not None and wall > wall_last:
                    first_fire = wall - self._offset_s(shift - 1)
        cursor = wall_last + 1
        while (wall := self._step(cursor, forward=False)) is not None:
            if wall >= cursor:
                cursor -= 1
                continue
            fires = [fire for fire in self._instants(wall) if fire < ts]
            if fires:
                return max([*fires, first_fire] if first_fire is not None else fires)
            cursor = wall
        return first_fire


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
