"""Cron expressions as we accept them: parsed into a CronSpec, with the rule for a job's DST kind.

Our dialect: 5 fields (minute hour day-of-month month day-of-week), or 6 fields with SECONDS
FIRST (as Quartz, Spring and BullMQ write them); the macros `@yearly @annually @monthly @weekly
@daily @midnight @hourly`; and in the fields (cronfields.py) names, lists, ranges, steps, `L`,
`LW`, `W`, `#`, `5L`/`L5` and Jenkins-style `H`, hashed by the schedule's name. Matching follows
Debian's cron(8) (Vixie cron): the day rule is in cronday.py, the job kind below.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.core import cronfields
from scheduler.core.cronday import DayRule
from scheduler.core.cronfields import DayOfMonth, DayOfWeek, FieldError
from scheduler.core.cronwall import first_day_on_or_after
from scheduler.core.wording import plural

# Expanded ourselves, without H: `@hourly` is minute 0, as in every cron.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_DAY_S = 86400
_HOUR_S = 3600
# 2000-01-01 as days since 1970-01-01: where the "does it ever fire" search starts.
_Y2K_DAY = 10957


class CronSyntaxError(ValueError):
    """A cron expression we cannot use; the message says why and how to fix it."""


def is_wildcard_job(time_fields: Sequence[str]) -> bool:
    """THE job-kind rule for DST (Debian cron(8), "Daylight Saving Time and other time changes").

    A job whose second, minute or hour field starts with `*` (`*`, `*/15`) is a WILDCARD job:
    it runs by the new wall time, so times a jump forward skips do not run and times a jump back
    repeats run again. Any other job is FIXED-TIME (`30 2 * * *`, `0 9-17 * * *`): it runs once
    per wall-clock time, a skipped one just after the gap, a repeated one at its first
    occurrence. Like Vixie cron's MIN_STAR and HR_STAR, only the field's first character counts.
    """
    return any(cronfields.is_unrestricted(text) for text in time_fields)


@dataclass(frozen=True)
class CronSpec:
    """A validated expression: the values each field matches, and the job's DST kind."""

    expression: str  # as the user wrote it
    fields: str  # macros expanded, whitespace normalised
    has_seconds: bool
    seconds: tuple[int, ...]  # sorted
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: int  # bit m set for each matching month m
    days: DayRule
    wildcard: bool  # is_wildcard_job: runs by the new wall time across DST changes
    shortest_interval_s: int  # conservative lower bound on the gap between two fires

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for expressions that fire alike (`H` of two names may land on the same minute),
        so that their timelines can be shared."""
        return (
            self.seconds,
            self.minutes,
            self.hours,
            self.months,
            self.days,
            self.wildcard,
        )


def parse_cron(expression: str, name: str) -> CronSpec:
    """Validate `expression` for the schedule `name`; raise CronSyntaxError if unusable.

    Memoised: a config of 100,000 schedules repeats few expressions, and only `H` makes the
    name matter."""
    return _parse_cron(expression, name if "h" in expression.lower() else "")


@functools.lru_cache(maxsize=65536)
def _parse_cron(expression: str, name: str) -> CronSpec:
    text, parts = _split(expression)
    has_seconds = len(parts) == 6
    second, minute, hour, dom, month, dow = parts if has_seconds else ("0", *parts)
    hash_id = name.encode() if "h" in text.lower() else None
    try:
        seconds = _field(cronfields.SECOND.name, second, hash_id)
        minutes = _field(cronfields.MINUTE.name, minute, hash_id)
        hours = _field(cronfields.HOUR.name, hour, hash_id)
        months = _months(month, hash_id)
        days = _days(dom, dow, hash_id)
    except FieldError as error:
        raise CronSyntaxError(f"cron {expression!r} is invalid: {error}") from None
    wildcard = is_wildcard_job((second, minute, hour))
    # Without H the expression alone decides, and _parse_cron's own memo covers it.
    make = _spec if hash_id is not None else _spec.__wrapped__
    return make(expression, text, has_seconds, seconds, minutes, hours, months, days, wildcard)


@functools.lru_cache(maxsize=4096)
def _split(expression: str) -> tuple[str, tuple[str, ...]]:
    """The expression's fields, macros expanded (memoised: 25,000 names share one `H H * * *`)."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise CronSyntaxError(
                f"unknown cron macro {text!r}; use one of {', '.join(sorted(MACROS))}"
            )
        text = MACROS[text.lower()]
    parts = text.split(" ") if text else []  # "".split(" ") is one empty field, not none
    if len(parts) not in (5, 6):
        raise CronSyntaxError(
            f"cron {expression!r} has {plural(len(parts), 'field')}; write 5 (minute hour day "
            "month weekday) or 6 with seconds first (second minute hour day month weekday)"
        )
    if any(item[:1] in ("R", "r") for part in parts for item in part.split(",")):
        # croniter drew R in each process: every replica, and `cronlease next`, would pick its
        # own minute, so runs would double or vanish across a failover.
        raise CronSyntaxError(
            f"cron {expression!r} uses R (random), which every replica would draw differently; "
            "use H instead: it picks a stable value from the schedule's name"
        )
    return text, tuple(parts)


# The parts of a parse that hold for many expressions, each memoised on what it depends on:
# 10,000 distinct `m h d * *` share 60 minutes, 24 hours and 28 days, and 25,000 names of one
# `H H * * *` land on 1,440 specs. A field's text alone decides its values unless it has an H
# (then the name does too, and nothing is memoised). Errors are never memoised: raised anew.
_KINDS = {
    kind.name: kind
    for kind in (cronfields.SECOND, cronfields.MINUTE, cronfields.HOUR, cronfields.MONTH)
}


def _field(kind: str, text: str, hash_id: bytes | None) -> tuple[int, ...]:
    if "h" not in text.lower():
        return _field_values(kind, text)
    # H resolved first, then memoised by the plain text: 25,000 names of `H * * * *` share 60
    # minutes. Any error, though, is the one `values` gives for the text as written.
    try:
        return _field_values(kind, cronfields.unhashed(_KINDS[kind], text, hash_id))
    except FieldError:
        return _sorted(cronfields.values(_KINDS[kind], text, hash_id))


@functools.lru_cache(maxsize=4096)
def _field_values(kind: str, text: str) -> tuple[int, ...]:
    return _sorted(cronfields.values(_KINDS[kind], text, None))


def _months(text: str, hash_id: bytes | None) -> int:
    if "h" in text.lower():
        return _month_bits.__wrapped__(text, hash_id)
    return _month_bits(text, None)


@functools.lru_cache(maxsize=1024)
def _month_bits(text: str, hash_id: bytes | None) -> int:
    return sum(1 << m for m in cronfields.values(cronfields.MONTH, text, hash_id))


def _days(dom: str, dow: str, hash_id: bytes | None) -> DayRule:
    if "h" in dom.lower() or "h" in dow.lower():
        return _day_fields.__wrapped__(dom, dow, hash_id)
    return _day_fields(dom, dow, None)


@functools.lru_cache(maxsize=4096)
def _day_fields(dom: str, dow: str, hash_id: bytes | None) -> DayRule:
    # The same order of checks as ever: a bad day of month is the error named, then the weekday.
    return _day_rule(
        cronfields.day_of_month(dom, hash_id),
        cronfields.day_of_week(dow, hash_id),
        cronfields.is_unrestricted(dom),
        cronfields.is_unrestricted(dow),
    )


@functools.lru_cache(maxsize=16384)
def _spec(
    expression: str,
    text: str,
    has_seconds: bool,
    seconds: tuple[int, ...],
    minutes: tuple[int, ...],
    hours: tuple[int, ...],
    months: int,
    days: DayRule,
    wildcard: bool,
) -> CronSpec:
    """The spec of resolved fields: one object for every name an H expression resolves alike."""
    spec = CronSpec(
        expression=expression,
        fields=text,
        has_seconds=has_seconds,
        seconds=seconds,
        minutes=minutes,
        hours=hours,
        months=months,
        days=days,
        wildcard=wildcard,
        shortest_interval_s=_shortest_interval_s(seconds, minutes, hours),
    )
    # The Gregorian calendar repeats every 400 years, and the search covers one cycle: no day in
    # it means no day ever.
    if first_day_on_or_after(spec, _Y2K_DAY) is None:
        raise CronSyntaxError(
            f"cron {expression!r} never fires (no date matches, e.g. February 31st); "
            "check the day-of-month, month and day-of-week fields"
        )
    return spec


# Equal parts of distinct expressions are one object: 100,000 `H` schedules differ in a minute,
# not in their 31 days and 60 seconds.
@functools.lru_cache(maxsize=4096)
def _sorted(values: frozenset[int]) -> tuple[int, ...]:
    return tuple(sorted(values))


@functools.lru_cache(maxsize=4096)
def _day_rule(
    dom: DayOfMonth, dow: DayOfWeek, dom_unrestricted: bool, dow_unrestricted: bool
) -> DayRule:
    return DayRule(dom, dow, dom_unrestricted, dow_unrestricted)


def _min_cyclic_gap(points: Sequence[int], span: int) -> int | None:
    """Smallest distance between consecutive values on a circle of `span`; None if < 2 values."""
    if len(points) < 2:
        return None
    gaps = [b - a for a, b in itertools.pairwise(points)]
    gaps.append(points[0] + span - points[-1])
    return min(gaps)


def _shortest_interval_s(
    seconds: Sequence[int], minutes: Sequence[int], hours: Sequence[int]
) -> int:
    gap = _min_cyclic_gap(seconds, 60)
    if gap is not None:
        return gap
    gap = _min_cyclic_gap(minutes, 60)
    if gap is not None:
        return gap * 60
    gap = _min_cyclic_gap(hours, 24)
    if gap is not None:
        # A DST shift can bring two hour-level fires up to an hour closer.
        return _HOUR_S if gap == 1 else (gap - 1) * _HOUR_S
    return _DAY_S - _HOUR_S
