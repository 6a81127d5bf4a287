"""The fire-time engine: when does a schedule fire. Pure: no clock, no I/O; instants are passed in.

Fire times are whole Unix seconds. Every timeline answers three questions, all bounded by the
schedule's optional `start`/`end` (both inclusive):

- `next_after(t)`: the first fire strictly after t;
- `prev_before(t)`: the last fire strictly before t;
- `count_between(a, b, limit)`: how many fires f with a < f < b, counting at most `limit`.

DST follows classic cron (see DESIGN "Time"): croniter (>= 6.1) already collapses fires in a
spring-forward gap to the first instant after the gap; it fires a fixed-hour job in BOTH
occurrences of a repeated hour, so for those we drop the second occurrence (fold=1).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError

from scheduler.cronexpr import CronSpec


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
        self._iter = spec.make_iter(datetime.fromtimestamp(0, zone))

    @property
    def shortest_interval_s(self) -> int:
        return self.spec.shortest_interval_s

    def _is_repeat(self, fire: int) -> bool:
        """A fixed-hour fire in the second occurrence of a repeated hour: classic cron skips it."""
        return not self.spec.wildcard_hour and datetime.fromtimestamp(fire, self.zone).fold == 1

    def _step(self, ts: int, forward: bool) -> int | None:
        start = datetime.fromtimestamp(ts, self.zone)
        try:
            if forward:
                return int(self._iter.get_next(float, start_time=start))
            return int(self._iter.get_prev(float, start_time=start))
        except CroniterBadDateError:
            return None

    def _next_after(self, ts: int) -> int | None:
        cursor = ts
        while (fire := self._step(cursor, forward=True)) is not None:
            if fire <= cursor:  # never seen; guards the loop should croniter not move forward
                cursor += 1
            elif self._is_repeat(fire):
                cursor = fire
            else:
                return fire
        return None

    def _prev_before(self, ts: int) -> int | None:
        cursor = ts
        while (fire := self._step(cursor, forward=False)) is not None:
            if fire >= cursor:
                cursor -= 1
            elif self._is_repeat(fire):
                cursor = fire
            else:
                return fire
        return None


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
