"""Each schedule's next fire after a given second, remembered between reports of one process.

The next fire strictly after `t` is the same for every `t` from the second asked about up to
(not including) that fire, so a page asking every few seconds computes a schedule's next fire
once per fire instead of once per request: with 10,000 schedules that is most of a report's
cost. An entry is used only for the very timeline it was computed from, so a config reload
(new Schedule objects) starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.core.schedule import Schedule
from scheduler.core.timefmt import rfc3339_local, rfc3339_utc
from scheduler.core.timeline import Timeline


@dataclass(frozen=True)
class NextFire:
    asked: int  # the second it was computed after
    fire: int | None  # None: the timeline has ended
    utc: str | None
    local: str | None  # RFC 3339 in the schedule's time zone


class NextFires:
    def __init__(self) -> None:
        self._memo: dict[str, tuple[Timeline, NextFire]] = {}

    def after(self, schedule: Schedule, ts: int) -> NextFire:
        entry = self._memo.get(schedule.name)
        if entry is not None and entry[0] is schedule.timeline:
            known = entry[1]
            if known.asked <= ts and (known.fire is None or ts < known.fire):
                return known
        fire = schedule.timeline.next_after(ts)
        found = NextFire(
            ts,
            fire,
            None if fire is None else rfc3339_utc(fire),
            None if fire is None else rfc3339_local(fire, schedule.timezone),
        )
        self._memo[schedule.name] = (schedule.timeline, found)
        return found

    def forget_except(self, names: set[str]) -> None:
        """Drop the schedules a reload removed, so the memo stays the config's size."""
        for name in set(self._memo) - names:
            del self._memo[name]
