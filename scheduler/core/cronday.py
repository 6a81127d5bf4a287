"""The day rule: which days of a month a cron expression's two day fields match, as Vixie cron says.

Written down once, here (`matching_days`); everything else that asks whether a day fires asks it.
Days are bit masks: bit d set means day d of the month matches, so a month is answered in a few
integer operations, and "the next matching day from d" is a shift and a lowest-bit lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from scheduler.core.cronfields import DayOfMonth, DayOfWeek, bits

_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ALL_DAYS = (2 << 31) - 2  # bits 1..31
_ALL_WEEKDAYS = 0b1111111


def days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month]


def _week_patterns(weekdays: int) -> tuple[int, ...]:
    """For each weekday the 1st can fall on (0 = Sunday), the days 1..31 on one of `weekdays`."""
    return tuple(
        bits({d for d in range(1, 32) if weekdays >> (first + d - 1) % 7 & 1}) for first in range(7)
    )


@dataclass(frozen=True)
class DayRule:
    """An expression's day-of-month and day-of-week fields, ready to answer a month at a time."""

    dom: DayOfMonth
    dow: DayOfWeek
    # Vixie cron: a field whose text starts with `*` (`*`, `*/2`) does not restrict the day for
    # the OR below, even where its values do restrict it (then the other field must match too).
    dom_unrestricted: bool
    dow_unrestricted: bool
    _week: tuple[int, ...] = field(init=False, repr=False, compare=False)
    # Every day of every month: the commonest case, answered without arithmetic.
    every_day: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: derived fields are set once, here
        set_(self, "_week", _week_patterns(self.dow.weekdays))
        specials = self.dom.last or self.dom.last_weekday or self.dom.nearest_weekday
        full_dom = self.dom.days == _ALL_DAYS and not specials
        full_dow = self.dow.weekdays == _ALL_WEEKDAYS and not (self.dow.nth or self.dow.last)
        set_(self, "every_day", full_dom and full_dow)


def matching_days(rule: DayRule, year: int, month: int) -> int:
    """THE day rule: bit d is set when day d of `month` in `year` matches.

    When both day fields restrict the day, a day matches if EITHER does (`0 12 16-22 * 0#1`:
    the first Sunday, and the 16th to the 22nd); when either field starts with `*`, a day must
    match BOTH (`0 0 */2 * 1`: odd days that are Mondays). `#`, `L` and `W` are values of their
    field like any other, so they follow the same rule.
    """
    last = days_in_month(year, month)
    valid = (2 << last) - 2
    if rule.every_day:
        return valid
    first = date(year, month, 1).toordinal() % 7  # the 1st's weekday, 0 = Sunday
    spec = rule.dom
    dom = spec.days
    if spec.last:
        dom |= 1 << last
    if spec.last_weekday:
        dom |= 1 << _weekday_on_or_before(last, (first + last - 1) % 7)
    for day in spec.nearest_weekday:
        dom |= 1 << _nearest_weekday(min(day, last), (first + min(day, last) - 1) % 7, last)
    dow = rule._week[first]
    for weekday, n in rule.dow.nth:
        day = 1 + (weekday - first) % 7 + 7 * (n - 1)
        dow |= 1 << day if day <= last else 0
    for weekday in rule.dow.last:
        dow |= 1 << (last - ((first + last - 1) % 7 - weekday) % 7)
    if rule.dom_unrestricted or rule.dow_unrestricted:
        return dom & dow & valid
    return (dom | dow) & valid


def day_matches(rule: DayRule, year: int, month: int, day: int) -> bool:
    """Whether one date matches the day fields (by `matching_days`)."""
    return bool(matching_days(rule, year, month) >> day & 1)


def _weekday_on_or_before(day: int, weekday: int) -> int:
    """The last Monday-to-Friday at or before `day`, which falls on `weekday` (0 = Sunday)."""
    return day - 2 if weekday == 0 else day - 1 if weekday == 6 else day


def _nearest_weekday(day: int, weekday: int, last: int) -> int:
    """Quartz's `nW`: the Monday-to-Friday nearest `day`, never leaving its month."""
    if weekday == 6:  # Saturday: the Friday before, or the Monday after the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 0:  # Sunday: the Monday after, or the Friday before the last day
        return day + 1 if day < last else day - 2
    return day
