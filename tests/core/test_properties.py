"""Properties of the pure core over generated inputs (hypothesis).

The cron properties run generated expressions (5 and 6 fields; values, ranges, steps, lists)
in zones with and without DST, over a few hours around a real 2024-2030 transition of that
zone, and check the engine against DESIGN "Time":

- fire times strictly increase;
- each fire matches the expression in local wall time, unless it is a fixed-time job's
  collapsed gap fire (the first instant after a gap in which a skipped wall time would have
  matched);
- no fire falls inside a gap; a fixed-time job never fires twice at one wall time;
- and, against a brute-force reference built minute by minute from the same rules, no fire is
  missing or extra.

The day fields follow Vixie cron's rule (both restricted: either matches; one starting with
`*`: both must); tests/core/test_cronsim_diff.py holds the engine against cronsim as well.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.core.catchup import MISFIRE_COUNT_LIMIT, plan
from scheduler.core.config import parse_config
from scheduler.core.cronexpr import parse_cron
from scheduler.core.durations import format_duration, parse_duration_s
from scheduler.core.schedule import ConfigError
from scheduler.core.timeline import CronTimeline, EveryTimeline, jitter_ms

ZONE_NAMES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # shifts at midnight
    "Asia/Kolkata",  # +05:30, no DST
    "Europe/Dublin",  # "negative" DST in tzdb: winter is the exception
    "America/St_Johns",  # -03:30 with DST
    "Pacific/Chatham",  # +12:45 / +13:45, shifts at 02:45 local
    "Antarctica/Troll",  # a two-hour DST shift
]
ZONES = {name: ZoneInfo(name) for name in ZONE_NAMES}
FROM_TS = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp())
UNTIL_TS = int(datetime(2031, 1, 1, tzinfo=timezone.utc).timestamp())
WINDOW_S = 4 * 3600
MAX_FIRES = 100

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def offset_s(ts: int, zone: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(ts, zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


@dataclass(frozen=True)
class Shift:
    at: int  # the first instant with the new offset
    before_s: int
    after_s: int


def find_shifts(zone: ZoneInfo) -> list[Shift]:
    """Every offset change of `zone` between FROM_TS and UNTIL_TS, found day by day."""
    shifts = []
    day = FROM_TS
    before = offset_s(day, zone)
    while day < UNTIL_TS:
        after = offset_s(day + 86400, zone)
        if after != before:
            lo, hi = day, day + 86400
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset_s(mid, zone) == before else (lo, mid)
            assert before % 60 == after % 60 == 0, "the reference assumes whole-minute offsets"
            shifts.append(Shift(hi, before, after))
        day, before = day + 86400, after
    return shifts


SHIFTS = {name: find_shifts(zone) for name, zone in ZONES.items()}


# -- generated cron expressions -------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]


@st.composite
def cron_field(
    draw: st.DrawFn, low: int, high: int, hot: list[int], top: int | None = None
) -> Field:
    """One field: `*`, `*/k`, `a`, `a-b`, `a-b/k` or a list of values and ranges.

    Values are drawn from low..high (often from `hot`); `*` still spans low..top.
    """
    top = high if top is None else top
    hot = [v for v in hot if low <= v <= high]
    value = st.sampled_from(hot) | st.integers(low, high) if hot else st.integers(low, high)
    kind = draw(st.sampled_from(["star", "step", "value", "range", "range-step", "list"]))
    if kind == "star":
        return Field("*", frozenset(range(low, top + 1)))
    if kind == "step":
        step = draw(st.integers(1, top - low + 1))
        return Field(f"*/{step}", frozenset(range(low, top + 1, step)))
    if kind == "value":
        v = draw(value)
        return Field(str(v), frozenset([v]))
    if kind in ("range", "range-step"):
        a, b = sorted([draw(value), draw(value)])
        if kind == "range":
            return Field(f"{a}-{b}", frozenset(range(a, b + 1)))
        # `a-a/k` is one value (a fixed hour, not a step): the plain `a-a` case covers it.
        if a == b:
            a, b = (a, a + 1) if a < high else (a - 1, a)
        step = draw(st.integers(1, max(1, b - a)))
        return Field(f"{a}-{b}/{step}", frozenset(range(a, b + 1, step)))
    parts: list[str] = []
    values: set[int] = set()
    for _ in range(draw(st.integers(2, 3))):
        a = draw(value)
        if draw(st.booleans()):
            b = min(high, a + draw(st.integers(1, 5)))
            parts.append(f"{a}-{b}")
            values.update(range(a, b + 1))
        else:
            parts.append(str(a))
            values.add(a)
    return Field(",".join(parts), frozenset(values))


@dataclass(frozen=True, repr=False)
class CronCase:
    expression: str
    zone_name: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # cron numbering: 0 = Sunday
    # Either day field starts with `*`: a day must match both; else either (Vixie cron).
    days_and: bool
    wildcard: bool  # a second, minute or hour field starting with `*` (DESIGN "Time")
    after: int  # where the walk starts

    @property
    def zone(self) -> ZoneInfo:
        return ZONES[self.zone_name]

    def __repr__(self) -> str:
        start = datetime.fromtimestamp(self.after, self.zone).isoformat()
        return f"<{self.expression!r} in {self.zone_name} after {start} ({self.after})>"

    def matches_minute(self, wall: datetime) -> bool:
        day = wall.day in self.days
        weekday = (wall.weekday() + 1) % 7 in self.weekdays
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
            and ((day and weekday) if self.days_and else (day or weekday))
        )

    def matches(self, wall: datetime) -> bool:
        return wall.second in self.seconds and self.matches_minute(wall)


@st.composite
def cron_cases(draw: st.DrawFn) -> CronCase:
    zone_name = draw(st.sampled_from(ZONE_NAMES))
    zone = ZONES[zone_name]
    shifts = SHIFTS[zone_name]
    if shifts:
        shift = draw(st.sampled_from(shifts))
        lead_s = draw(st.sampled_from([1, 30, 61, 600, 1800, 3599, 3600, 5400, 7200, 10800]))
        after = shift.at - lead_s - draw(st.integers(0, 59))
        near = [datetime.fromtimestamp(shift.at + k * 1800, zone) for k in range(-5, 6)]
    else:
        after = draw(st.integers(FROM_TS, UNTIL_TS))
        near = [datetime.fromtimestamp(after + k * 1800, zone) for k in range(0, 8)]
    hot_hours = sorted({w.hour for w in near})
    has_seconds = draw(st.booleans())
    seconds = draw(cron_field(0, 59, [0, 1, 30, 59])) if has_seconds else Field("0", frozenset([0]))
    minutes = draw(cron_field(0, 59, [0, 15, 30, 45, 59]))
    hours = draw(cron_field(0, 23, hot_hours))
    everything = {
        "day": Field("*", frozenset(range(1, 32))),
        "month": Field("*", frozenset(range(1, 13))),
        "weekday": Field("*", frozenset(range(7))),
    }
    # Day of month and day of week, alone or together (Vixie cron's OR / AND rule), or the
    # month alone: a day with a month can name a date that never comes.
    restricted = draw(st.sampled_from([None, "day", "month", "weekday", "day+weekday"]))
    if restricted in ("day", "day+weekday"):
        # Values up to 28 so that every month has them; `*` and `*/k` still reach the 31st.
        everything["day"] = draw(cron_field(1, 28, sorted({w.day for w in near}), top=31))
    if restricted == "month":
        everything["month"] = draw(cron_field(1, 12, sorted({w.month for w in near})))
    if restricted in ("weekday", "day+weekday"):
        weekdays = sorted({(w.weekday() + 1) % 7 for w in near})
        everything["weekday"] = draw(cron_field(0, 6, weekdays))
    fields = [minutes, hours, everything["day"], everything["month"], everything["weekday"]]
    if has_seconds:
        fields.insert(0, seconds)
    return CronCase(
        expression=" ".join(f.text for f in fields),
        zone_name=zone_name,
        seconds=seconds.values,
        minutes=minutes.values,
        hours=hours.values,
        days=everything["day"].values,
        months=everything["month"].values,
        weekdays=everything["weekday"].values,
        days_and=everything["day"].text.startswith("*") or everything["weekday"].text[0] == "*",
        wildcard=any(f.text.startswith("*") for f in (seconds, minutes, hours)),
        after=after,
    )


def walk(case: CronCase, max_fires: int = MAX_FIRES) -> tuple[CronTimeline, list[int], int]:
    """The engine's fires after case.after, and the instant up to which the list is complete."""
    line = CronTimeline(parse_cron(case.expression, "prop"), case.zone)
    until = case.after + WINDOW_S
    fires: list[int] = []
    fire = line.next_after(case.after)
    while fire is not None and fire <= until and len(fires) < max_fires:
        fires.append(fire)
        fire = line.next_after(fire)
    if len(fires) == max_fires:
        until = fires[-1]
    return line, fires, until


def gaps_between(case: CronCase, lo: int, hi: int) -> list[Shift]:
    return [s for s in SHIFTS[case.zone_name] if lo < s.at <= hi and s.after_s > s.before_s]


def skipped_wall_matches(case: CronCase, gap: Shift) -> bool:
    """Would some wall time skipped by `gap` have matched the expression?"""
    first_skipped = datetime(1970, 1, 1) + timedelta(seconds=gap.at + gap.before_s)
    minutes = (gap.after_s - gap.before_s) // 60
    return any(case.matches_minute(first_skipped + timedelta(minutes=m)) for m in range(minutes))


def is_collapsed_gap_fire(case: CronCase, fire: int) -> bool:
    return not case.wildcard and any(
        gap.at == fire and skipped_wall_matches(case, gap)
        for gap in gaps_between(case, fire - 1, fire)
    )


def reference_fires(case: CronCase, lo: int, hi: int) -> set[int]:
    """Fires f with lo < f <= hi, brute force, minute by minute, from the DESIGN rules."""
    expected: set[int] = set()
    for minute in range(lo - lo % 60, hi + 1, 60):  # offsets are whole minutes
        wall = datetime.fromtimestamp(minute, case.zone)
        # A wildcard job runs at every instant whose wall time matches, a fixed-time one at the
        # first occurrence of each.
        if case.matches_minute(wall) and (case.wildcard or wall.fold == 0):
            expected.update(f for f in (minute + s for s in case.seconds) if lo < f <= hi)
    for gap in gaps_between(case, lo, hi):
        if not case.wildcard and skipped_wall_matches(case, gap):
            expected.add(gap.at)
    return expected


def wall_time_exists(fire: int, zone: ZoneInfo) -> bool:
    wall = datetime.fromtimestamp(fire, zone)
    naive = wall.replace(tzinfo=None)
    back = datetime.fromtimestamp(wall.timestamp(), zone).replace(tzinfo=None)
    return back == naive


@PROPERTY_SETTINGS
@given(cron_cases())
def test_cron_fires_obey_the_dst_rules(case: CronCase) -> None:
    # One walk per example feeds every check: walking is what costs.
    line, fires, until = walk(case)
    assert all(a < b for a, b in itertools.pairwise(fires)), "fire times strictly increase"
    walls = [datetime.fromtimestamp(f, case.zone) for f in fires]
    for fire, wall in zip(fires, walls, strict=True):
        assert case.matches(wall) or is_collapsed_gap_fire(case, fire), (
            f"{wall.isoformat()} neither matches {case.expression!r} nor collapses a gap"
        )
        assert wall_time_exists(fire, case.zone), f"{wall.isoformat()} lies in a DST gap"
    if not case.wildcard:
        naive = [w.replace(tzinfo=None) for w in walls]
        assert len(set(naive)) == len(naive), "a fixed-time fire repeated in a fold"
        assert all(w.fold == 0 for w in walls), "a fixed-time fire in a second occurrence"

    assert fires == sorted(reference_fires(case, case.after, until)), (
        "the engine differs from the brute-force reference (a fire missing or extra)"
    )

    # The lower bound that jitter is checked against holds between fires with the same
    # offset that are not collapsed gap fires; DST can bring fires closer than it.
    for a, b in itertools.pairwise(fires):
        if offset_s(a, case.zone) != offset_s(b, case.zone):
            continue
        if is_collapsed_gap_fire(case, a) or is_collapsed_gap_fire(case, b):
            continue
        assert b - a >= line.shortest_interval_s, "closer than shortest_interval_s"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cron_cases())
def test_prev_before_and_count_between_agree_with_next_after(case: CronCase) -> None:
    line, fires, _ = walk(case, max_fires=30)
    for earlier, later in itertools.pairwise(fires):
        assert line.prev_before(later) == earlier
        assert line.prev_before(earlier + 1) == earlier
    if fires:
        before_first = line.prev_before(fires[0])
        assert before_first is None or before_first <= case.after
        assert line.count_between(case.after, fires[-1] + 1, 1000) == len(fires)
        assert line.count_between(case.after, fires[-1], 1000) == len(fires) - 1


# -- jitter, durations -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    name=st.text("abcxyzABC019_.-", min_size=1, max_size=128),
    fire=st.integers(0, 2**40),
    bound_s=st.integers(1, 7 * 86400),
)
def test_jitter_is_deterministic_and_within_its_bound(name: str, fire: int, bound_s: int) -> None:
    delay = jitter_ms(name, fire, bound_s)
    assert 0 <= delay < bound_s * 1000
    assert jitter_ms(name, fire, bound_s) == delay


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9))
def test_durations_round_trip_through_their_canonical_spelling(seconds: int) -> None:
    spelled = format_duration(seconds)
    assert parse_duration_s(spelled) == seconds
    assert parse_duration_s(str(seconds)) == seconds


# -- catch-up ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    interval_s=st.sampled_from([1, 7, 60, 300, 3600]),
    behind_s=st.integers(-3600, 30000) | st.none(),
    now_frac=st.floats(0, 0.999),
    served_s=st.integers(0, 20000),
    policy=st.sampled_from(["all", "latest", "skip"]),
    window_s=st.integers(0, 20000),
    cap=st.integers(1, 150),
    late_after_s=st.sampled_from([0.0, 1.0, 30.0, 600.0]),
)
def test_a_plan_decides_every_fire_once(
    interval_s: int,
    behind_s: int | None,
    now_frac: float,
    served_s: int,
    policy: str,
    window_s: int,
    cap: int,
    late_after_s: float,
) -> None:
    line = EveryTimeline(interval_s)
    now = 1767787200 + now_frac
    after = None if behind_s is None else 1767787200 - behind_s
    on_time_from = now - served_s
    result = plan(line, after, now, on_time_from, policy, window_s, cap, late_after_s)  # type: ignore[arg-type]
    start = 1767787200 if after is None else after
    # Missed: before this leader served, or planned later than late_after_s.
    missed_until = max(on_time_from, now - late_after_s)

    due = result.due
    assert list(due) == sorted(set(due)), "due fires are distinct and oldest first"
    assert all(start < f <= now for f in due)
    assert len(due) <= cap
    assert all(f < missed_until for f in result.catchup)
    assert all(f >= missed_until for f in result.scheduled), "on-time fires are scheduled"
    assert all(f >= now - window_s for f in result.catchup), "nothing older than the window"
    if policy != "all":
        assert len(result.catchup) <= 1
    if policy == "skip":
        assert result.catchup == ()

    decided = line.count_between(start, result.handled_through + 1, 10**9)
    if result.misfired < MISFIRE_COUNT_LIMIT:
        assert result.misfired + len(due) == decided, "every fire enqueued or misfired, once"
    assert result.next_fire == line.next_after(result.handled_through)
    if result.next_fire is not None and result.next_fire <= now:
        assert len(due) == cap, "a due fire is left over only when the cap cut the batch"


# -- bad input never crashes validation --------------------------------------------------------

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.sampled_from(["0 3 * * *", "*/10 * * * * *", "@daily", "H * * * *", "0 0 31 2 *",
                     "15m", "1h30m", "0s", "soon", "Europe/Berlin", "Europe", "Mars/Base",
                     "2026-12-01T09:00:00+01:00", "2026-03-29 02:30", "all", "latest", "x"]),
    st.text(max_size=10),
)  # fmt: skip
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(yaml_scalars, inner, max_size=3),
    max_leaves=8,
)
schedule_keys = st.sampled_from(
    ["cron", "every", "at", "job", "args", "queue", "timezone", "enabled", "catchup",
     "catchup_window", "jitter", "start", "end", "description", "colour"]
)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    defaults=st.dictionaries(schedule_keys, yaml_values, max_size=3) | yaml_values,
    schedules=st.dictionaries(
        yaml_scalars, st.dictionaries(schedule_keys, yaml_values, max_size=6) | yaml_values,
        max_size=3,
    ),
)  # fmt: skip
def test_any_yaml_is_either_a_config_or_a_config_error(defaults: object, schedules: object) -> None:
    try:
        text = yaml.safe_dump({"defaults": defaults, "schedules": schedules})
    except yaml.YAMLError:
        return
    try:
        config = parse_config(text)
    except ConfigError as error:
        assert error.problems
        assert all(line.startswith("schedules.yaml") for line in error.lines())
        return
    for schedule in config.schedules:
        json.loads(schedule.args_json)
        schedule.timeline.next_after(1767787200)
