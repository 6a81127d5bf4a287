"""Matching wall times of a CronSpec: the next or previous local date-time its fields match.

Wall time is counted in wall seconds: the local date and time read as if it were UTC (days since
1970-01-01 times 86400, plus the second of the day), where nothing is skipped or repeated. No
time zone is known here; timeline.py maps wall times to instants by the job's DST kind.

Per day: does the day match (cronday.py's rule, a month at a time); then the matching times of
that day, found by bisecting the sorted hours, minutes and seconds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date
from typing import TYPE_CHECKING

from scheduler.core.cronday import matching_days

if TYPE_CHECKING:
    from scheduler.core.cronexpr import CronSpec

DAY_S = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# The calendar's ends, kept a day inside so that a zone's offset never leaves it.
FIRST_DAY = date(1, 1, 2).toordinal() - _EPOCH_ORDINAL
LAST_DAY = date(9999, 12, 30).toordinal() - _EPOCH_ORDINAL
# The Gregorian calendar repeats every 400 years: a day fields' pattern with no match in that
# many months has none at all.
_CYCLE_MONTHS = 400 * 12


def first_day_on_or_after(spec: CronSpec, day: int) -> int | None:
    """The first day (days since 1970-01-01) from `day` on whose date matches, or None."""
    day = max(day, FIRST_DAY)
    if day > LAST_DAY:
        return None
    when = date.fromordinal(day + _EPOCH_ORDINAL)
    year, month, mday = when.year, when.month, when.day
    months, rule = spec.months, spec.days
    if months >> month & 1 and matching_days(rule, year, month) >> mday & 1:
        return day  # the commonest answer, without building a date
    for _ in range(_CYCLE_MONTHS + 1):
        if months >> month & 1:
            mask = matching_days(rule, year, month) >> mday
            if mask:
                found = mday + (mask & -mask).bit_length() - 1
                found_day = date(year, month, found).toordinal() - _EPOCH_ORDINAL
                return found_day if found_day <= LAST_DAY else None
        if month == 12:
            if year >= 9999:
                return None
            year, month = year + 1, 1
        else:
            month += 1
        mday = 1
    return None


def last_day_on_or_before(spec: CronSpec, day: int) -> int | None:
    """The last day up to `day` whose date matches, or None."""
    day = min(day, LAST_DAY)
    if day < FIRST_DAY:
        return None
    when = date.fromordinal(day + _EPOCH_ORDINAL)
    year, month, mday = when.year, when.month, when.day
    months, rule = spec.months, spec.days
    if months >> month & 1 and matching_days(rule, year, month) >> mday & 1:
        return day
    for _ in range(_CYCLE_MONTHS + 1):
        if months >> month & 1:
            mask = matching_days(rule, year, month) & ((2 << mday) - 1)
            if mask:
                found_day = date(year, month, mask.bit_length() - 1).toordinal() - _EPOCH_ORDINAL
                return found_day if found_day >= FIRST_DAY else None
        if month == 1:
            if year <= 1:
                return None
            year, month = year - 1, 12
        else:
            month -= 1
        mday = 31  # the mask holds no day past the month's last
    return None


def _first_time(spec: CronSpec) -> int:
    return spec.hours[0] * 3600 + spec.minutes[0] * 60 + spec.seconds[0]


def _last_time(spec: CronSpec) -> int:
    return spec.hours[-1] * 3600 + spec.minutes[-1] * 60 + spec.seconds[-1]


def next_time_of_day(spec: CronSpec, t: int) -> int | None:
    """The first matching second of the day at or after `t` (0..86399), or None."""
    hours, minutes, seconds = spec.hours, spec.minutes, spec.seconds
    h, rest = divmod(t, 3600)
    m, s = divmod(rest, 60)
    i = bisect_left(hours, h)
    if i < len(hours) and hours[i] == h:
        j = bisect_left(minutes, m)
        if j < len(minutes) and minutes[j] == m:
            k = bisect_left(seconds, s)
            if k < len(seconds):
                return t - s + seconds[k]
            j += 1
        if j < len(minutes):
            return h * 3600 + minutes[j] * 60 + seconds[0]
        i += 1
    if i < len(hours):
        return hours[i] * 3600 + minutes[0] * 60 + seconds[0]
    return None


def prev_time_of_day(spec: CronSpec, t: int) -> int | None:
    """The last matching second of the day at or before `t` (0..86399), or None."""
    hours, minutes, seconds = spec.hours, spec.minutes, spec.seconds
    h, rest = divmod(t, 3600)
    m, s = divmod(rest, 60)
    i = bisect_right(hours, h) - 1
    if i >= 0 and hours[i] == h:
        j = bisect_right(minutes, m) - 1
        if j >= 0 and minutes[j] == m:
            k = bisect_right(seconds, s) - 1
            if k >= 0:
                return t - s + seconds[k]
            j -= 1
        if j >= 0:
            return h * 3600 + minutes[j] * 60 + seconds[-1]
        i -= 1
    if i >= 0:
        return hours[i] * 3600 + minutes[-1] * 60 + seconds[-1]
    return None


def next_wall(spec: CronSpec, wall: int) -> int | None:
    """The first matching wall time at or after `wall`, or None (past the year 9999)."""
    day, t = divmod(wall, DAY_S)
    time_of_day = next_time_of_day(spec, t)
    if time_of_day is None:
        day += 1
    found = first_day_on_or_after(spec, day)
    if found is None:
        return None
    if found != day or time_of_day is None:
        time_of_day = _first_time(spec)
    return found * DAY_S + time_of_day


def prev_wall(spec: CronSpec, wall: int) -> int | None:
    """The last matching wall time at or before `wall`, or None (before the year 1)."""
    day, t = divmod(wall, DAY_S)
    time_of_day = prev_time_of_day(spec, t)
    if time_of_day is None:
        day -= 1
    found = last_day_on_or_before(spec, day)
    if found is None:
        return None
    if found != day or time_of_day is None:
        time_of_day = _last_time(spec)
    return found * DAY_S + time_of_day
