"""A schedule's trigger (cron, every, at) -> its Timeline: one object per distinct trigger.

Equal timelines are one object, so that the leader plans them once (ticker.py), and 100,000
schedules on a few hundred distinct triggers cost a few hundred timelines. What schedules repeat
is memoised per load (successes only: a problem is found anew each time, so its message and
line are always its own).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.core.cronexpr import CronSpec, CronSyntaxError, parse_cron
from scheduler.core.durations import parse_duration_s
from scheduler.core.timefmt import parse_instant, rfc3339_utc
from scheduler.core.timeline import AtTimeline, CronTimeline, EveryTimeline, Timeline

# (line, message) -> None: where a trigger's problems go (ScheduleChecker.problem).
Report = Callable[[int, str], None]


class Triggers:
    """Makes the timelines of one load's schedules, sharing equal ones."""

    def __init__(self, problem: Report) -> None:
        self.problem = problem
        self._timelines: dict[tuple[object, ...], Timeline] = {}
        self._durations: dict[tuple[type, object], int] = {}
        # A cron spec object's timeline in a zone and window (parse_cron shares spec objects,
        # and their key, a tuple of tuples, is slow to hash 100,000 times).
        self._crons: dict[tuple[int, str, int | None, int | None], tuple[CronSpec, Timeline]] = {}

    def _shared(self, key: tuple[object, ...], make: Callable[[], Timeline]) -> Timeline:
        timeline = self._timelines.get(key)
        if timeline is None:
            timeline = self._timelines[key] = make()
        return timeline

    def seconds(self, raw: Any) -> int:
        """parse_duration_s, memoised on the value and its type (`1` is not `true`)."""
        if not isinstance(raw, (str, int)):
            return parse_duration_s(raw)
        memo = (type(raw), raw)
        seconds = self._durations.get(memo)
        if seconds is None:
            seconds = self._durations[memo] = parse_duration_s(raw)
        return seconds

    def timeline(
        self,
        name: str,
        kind: str,
        raw: Any,
        line: int,
        zone: ZoneInfo,
        start_ts: int | None,
        end_ts: int | None,
    ) -> Timeline | None:
        """The timeline of `kind: raw`, or None with the problem reported at `line`."""
        if kind == "cron":
            if not isinstance(raw, str):
                self.problem(line, f"schedule {name!r}: cron must be a quoted string")
                return None
            try:
                spec = parse_cron(raw, name)
            except CronSyntaxError as error:
                self.problem(line, f"schedule {name!r}: {error}")
                return None
            # The entry holds the spec, so its id cannot be reused meanwhile.
            memo = (id(spec), zone.key, start_ts, end_ts)
            known = self._crons.get(memo)
            if known is not None and known[0] is spec:
                return known[1]
            key = ("cron", spec.key, zone.key, start_ts, end_ts)
            timeline = self._shared(key, lambda: CronTimeline(spec, zone, start_ts, end_ts))
            self._crons[memo] = (spec, timeline)
            return timeline
        if kind == "every":
            try:
                interval = self.seconds(raw)
            except ValueError as error:
                self.problem(line, f"schedule {name!r}: every: {error}")
                return None
            if interval < 1:
                self.problem(line, f"schedule {name!r}: every must be at least 1s")
                return None
            return self._shared(
                ("every", interval, start_ts, end_ts),
                lambda: EveryTimeline(interval, start_ts, end_ts),
            )
        try:
            at_ts = to_instant(raw, zone)
        except ValueError as error:
            self.problem(line, f"schedule {name!r}: at: {error}")
            return None
        return self._shared(
            ("at", at_ts, start_ts, end_ts), lambda: AtTimeline(at_ts, start_ts, end_ts)
        )


def fires_within_bounds(timeline: Timeline) -> bool:
    """Whether a bounded timeline has any fire at all: pure arithmetic, whatever `now` is."""
    if timeline.start_ts is not None:
        return timeline.next_after(timeline.start_ts - 1) is not None
    if timeline.end_ts is not None:
        return timeline.prev_before(timeline.end_ts + 1) is not None
    return True


def window_text(start_ts: int | None, end_ts: int | None) -> str:
    if start_ts is not None and end_ts is not None:
        return f"between start {rfc3339_utc(start_ts)} and end {rfc3339_utc(end_ts)}"
    if start_ts is not None:
        return f"after start {rfc3339_utc(start_ts)}"
    return f"before end {rfc3339_utc(end_ts or 0)}"


def to_instant(raw: Any, zone: ZoneInfo) -> int:
    """`start`, `end` or `at` as Unix seconds, read in the schedule's zone when it has none."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError(f"{raw!r} is not a date-time; write e.g. 2030-12-01T09:00:00+01:00")
    moment: datetime = parse_instant(str(raw), zone)
    if moment.microsecond:
        raise ValueError(f"{raw!r} has a fraction of a second; fire times are whole seconds")
    return int(moment.timestamp())
