"""Cron expressions as we accept them, translated for croniter.

Our dialect: 5 fields (minute hour day-of-month month day-of-week), or 6 fields with SECONDS
FIRST (as Quartz, Spring and BullMQ write them; croniter puts them last by default, so we pass
`second_at_beginning=True`); the macros `@yearly @annually @monthly @weekly @daily @midnight
@hourly`; `L`, `W`, `#`; and Jenkins-style `H`, hashed by the schedule's name.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from scheduler.core.wording import plural

# Expanded ourselves: given a hash_id, croniter would turn `@hourly` into `H * * * *`.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DAY_S = 86400
_HOUR_S = 3600


class CronSyntaxError(ValueError):
    """A cron expression we cannot use; the message says why and how to fix it."""


@dataclass(frozen=True)
class CronSpec:
    """A validated expression: what croniter needs, plus the facts our DST rule depends on."""

    expression: str  # as the user wrote it
    fields: str  # macros expanded, whitespace normalised
    has_seconds: bool
    hash_id: bytes | None  # the schedule's name when the expression uses H
    # Hour field `*` or a step: such a schedule runs in both occurrences of a repeated hour.
    wildcard_hour: bool
    shortest_interval_s: int  # conservative lower bound on the gap between two fires
    # What the fields expand to: equal for expressions that fire alike (`H` of two names may
    # land on the same minute), so timelines can be shared.
    expanded_key: str = ""
    # croniter's iterator, made once (making one parses the expression again). It walks wall
    # time as if in UTC; callers always pass start_time, so sharing it is safe in one thread.
    iterator: croniter | None = field(default=None, compare=False, repr=False)

    def make_iter(self, start: datetime) -> croniter:
        return croniter(
            self.fields,
            start,
            hash_id=self.hash_id,
            second_at_beginning=self.has_seconds,
        )

    def wall_iter(self) -> croniter:
        return self.iterator if self.iterator is not None else self.make_iter(_EPOCH)


def parse_cron(expression: str, name: str) -> CronSpec:
    """Validate `expression` for the schedule `name`; raise CronSyntaxError if unusable.

    Memoised: a config of 100,000 schedules repeats few expressions, and only `H` makes the
    name matter."""
    return _parse_cron(expression, name if "h" in expression.lower() else "")


@functools.lru_cache(maxsize=65536)
def _parse_cron(expression: str, name: str) -> CronSpec:
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
    # croniter reads an equal range (`9-9`, `MON-MON`) as the whole cycle, i.e. `*`; in classic
    # cron it is that one value, so say so before croniter sees it.
    parts = [_collapse_equal_ranges(part) for part in parts]
    if any(item[:1] in ("R", "r") for part in parts for item in part.split(",")):
        # croniter draws R in each process: every replica, and `cronlease next`, would pick its
        # own minute, so runs would double or vanish across a failover.
        raise CronSyntaxError(
            f"cron {expression!r} uses R (random), which every replica would draw differently; "
            "use H instead: it picks a stable value from the schedule's name"
        )
    text = " ".join(parts)
    has_seconds = len(parts) == 6
    hash_id = name.encode() if "h" in text.lower() else None
    try:
        # Constructing the iterator validates and expands the expression: once, not twice.
        iterator = croniter(text, _EPOCH, hash_id=hash_id, second_at_beginning=has_seconds)
    except (CroniterBadCronError, CroniterError, ValueError) as error:
        raise CronSyntaxError(f"cron {expression!r} is invalid: {error}") from None
    expanded, nth = iterator.expanded, iterator.nth_weekday_of_month
    hour_field = parts[2] if has_seconds else parts[1]
    spec = CronSpec(
        expression=expression,
        fields=text,
        has_seconds=has_seconds,
        hash_id=hash_id,
        wildcard_hour="*" in hour_field or "/" in hour_field,
        shortest_interval_s=_shortest_interval_s(expanded, has_seconds),
        expanded_key=f"{expanded!r}{nth!r}{has_seconds}",
        iterator=iterator,
    )
    if not _ever_fires(spec.expanded_key, spec):
        raise CronSyntaxError(
            f"cron {expression!r} never fires (no date matches, e.g. February 31st); "
            "check the day-of-month and month fields"
        )
    return spec


_FIRES_CACHE: dict[str, bool] = {}


def _ever_fires(key: str, spec: CronSpec) -> bool:
    """Whether any date matches (croniter searches up to 50 years); one search per expansion."""
    known = _FIRES_CACHE.get(key)
    if known is None:
        try:
            spec.wall_iter().get_next(float, start_time=946684800.0)  # from 2000-01-01
            known = True
        except CroniterBadDateError:
            known = False
        _FIRES_CACHE[key] = known
    return known


_EQUAL_RANGE = re.compile(r"([0-9A-Za-z]+)-\1(?:/\d+)?", re.IGNORECASE)


def _collapse_equal_ranges(field: str) -> str:
    """`9-9` -> `9` and `5-5/2` -> `5` in each comma-separated item of one field."""
    return ",".join(
        match.group(1) if (match := _EQUAL_RANGE.fullmatch(item)) else item
        for item in field.split(",")
    )


def _min_cyclic_gap(values: Sequence[object], span: int) -> int | None:
    """Smallest distance between consecutive values on a circle of `span`; None if < 2 values."""
    chosen = range(span) if "*" in values else (v for v in values if isinstance(v, int))
    points = sorted(set(chosen))
    if len(points) < 2:
        return None
    gaps = [b - a for a, b in itertools.pairwise(points)]
    gaps.append(points[0] + span - points[-1])
    return min(gaps)


def _shortest_interval_s(expanded: Sequence[Sequence[object]], has_seconds: bool) -> int:
    # croniter's expanded order: minute, hour, day, month, weekday[, second]
    minutes, hours = expanded[0], expanded[1]
    seconds = expanded[5] if has_seconds else [0]
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
