"""The engine against cronsim, the cron engine healthchecks.io uses to mirror Debian's cron.

Generated expressions in every form cronsim reads (5 and 6 fields; lists, ranges, steps, `a/k`,
`a-a/k`, month and weekday names, `L`, `LW`, `w#n`, `wL`, 7 for Sunday), each in a zone with DST
changes of some shape (a 30-minute shift, a 45-minute zone, changes at midnight, summer time
suspended for Ramadan, a two-hour shift, "negative" DST), from an instant around one of its
changes. Our next fires must be cronsim's, or the difference must be one of cronsim's own
errors in CRONSIM_ERRORS, and proven so: our fires then equal the DESIGN "Time" rule applied to
the wall times cronsim itself matches when given no zone (where no DST can reach it). So the
fields' meaning is always cronsim's; only its DST handling is ever overruled, and only where it
breaks Debian's rule.

Forms cronsim lacks (`H`, `nW`, `?`, `L5`, ranges that wrap) are tested in test_timeline.py.
`CRONLEASE_CRONSIM_CASES=120000` runs more cases than the default (a few seconds' worth).
"""

from __future__ import annotations

import functools
import itertools
import os
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim, CronSimError

from scheduler.core.cronexpr import CronSyntaxError, parse_cron
from scheduler.core.timeline import CronTimeline

ZONES = [
    "UTC",
    "Asia/Kolkata",  # +05:30, no DST
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",  # southern hemisphere
    "Australia/Lord_Howe",  # a 30-minute shift
    "Pacific/Chatham",  # +12:45, changes at 02:45
    "America/Havana",  # changes at midnight
    "America/Santiago",  # changes at midnight
    "Africa/Casablanca",  # summer time suspended for Ramadan
    "Europe/Dublin",  # "negative" DST in tzdb
    "America/St_Johns",  # -03:30 with DST
    "Antarctica/Troll",  # a two-hour shift
]
CASES = int(os.environ.get("CRONLEASE_CRONSIM_CASES", "3000"))
FIRES = 5  # compared per case
SEED = 20261101
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# Leads and lags around a change: before, at, just after, inside a repeated or skipped hour.
AROUND = [-10801, -3600, -1800, -61, -1, 0, 1, 1799, 3599, 5400]


# -- cronsim's own errors -------------------------------------------------------------------------

CRONSIM_ERRORS = {
    "six fields, fixed time": (
        "cronsim applies Debian's DST rule to 5-field expressions only (its source: 6-field ones "
        "'are not Debian cron compatible anyway') and runs 6-field ones by real time; DESIGN "
        "'Time' applies the rule to the second field as well"
    ),
    "fixed time, from a repeated hour": (
        "from an instant in the second run of a repeated interval cronsim searches from the "
        "start's wall time with its offset dropped, so it returns the first occurrence of a "
        "later wall time of that interval, which lies before the start"
    ),
    "wildcard, hour step": (
        "for a wildcard job cronsim moves to the next hour by truncating the wall time to :00 "
        "and adding 3600 s in UTC: across a shift that is not a whole hour (Lord Howe), or from "
        "inside a gap (Chatham), it lands off the hour and skips the fires before; in a "
        "repeated interval it never goes back to an hour it has passed, so it drops fires of "
        "the second run or yields first-run ones again"
    ),
    "wildcard, stuck": (
        "the same hour step, in Chatham's repeated 02:45-03:45, never ends: adding 3600 s "
        "takes cronsim into the second run, truncating to :00 takes it back into the first"
    ),
    "a-a/k": (
        "DESIGN 'Time' names this one: cronsim reading `a-a/k` as `a/k`, where Vixie cron reads "
        "`a` alone; cronsim 2.9 reads it as Vixie cron does, so only an older one shows it"
    ),
}


def offset_s(ts: int, zone: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(ts, zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def changes(zone: ZoneInfo) -> list[int]:
    """The first instant of each new offset of `zone` in 2025-2031, found day by day (cases
    start up to 2027; their fires may run on)."""
    found = []
    day = int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp())
    until = int(datetime(2032, 1, 1, tzinfo=timezone.utc).timestamp())
    while day < until:
        lo, hi = day, day + 86400
        if offset_s(lo, zone) != offset_s(hi, zone):
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset_s(mid, zone) == offset_s(lo, zone) else (lo, mid)
            found.append(hi)
        day += 86400
    return found


@functools.cache
def zone_changes(name: str) -> list[int]:
    return changes(ZoneInfo(name))


# -- generated expressions ------------------------------------------------------------------------


@dataclass
class Fields:
    """Draws field texts cronsim reads, from values "hot" near the start instant."""

    rng: random.Random

    def value(self, low: int, high: int, hot: list[int]) -> int:
        hot = [v for v in hot if low <= v <= high]
        if hot and self.rng.random() < 0.6:
            return self.rng.choice(hot)
        return self.rng.randint(low, high)

    def name(self, value: int, low: int, names: list[str] | None) -> str:
        if names and value - low < len(names) and self.rng.random() < 0.3:
            return names[value - low]
        return str(value)

    def field(self, low: int, high: int, hot: list[int], names: list[str] | None = None) -> str:
        rng = self.rng
        kind = rng.choice(["*", "*/k", "a", "a-b", "a-b/k", "a/k", "a-a/k", "list", "list"])
        a, b = sorted([self.value(low, high, hot), self.value(low, high, hot)])
        na, nb = self.name(a, low, names), self.name(b, low, names)
        step = rng.randint(1, high - low + 1)
        if kind == "*":
            return "*"
        if kind == "*/k":
            return f"*/{step}"
        if kind == "a":
            return na
        if kind == "a-b":
            return f"{na}-{nb}"
        if kind == "a-b/k":
            return f"{na}-{nb}/{rng.randint(1, max(1, b - a + 1))}"
        if kind == "a/k":
            return f"{na}/{step}"
        if kind == "a-a/k":
            return f"{na}-{na}/{rng.randint(1, 10)}"
        items = []
        for _ in range(rng.randint(2, 3)):
            v = self.value(low, high, hot)
            items.append(
                rng.choice(
                    [
                        self.name(v, low, names),
                        f"{self.name(v, low, names)}-{min(high, v + rng.randint(1, 5))}",
                        f"*/{rng.randint(2, max(2, (high - low) // 2))}",
                        f"{v}-{high}/{rng.randint(2, 9)}",
                    ]
                )
            )
        return ",".join(items)

    def day_of_month(self, hot: list[int]) -> str:
        roll = self.rng.random()
        if roll < 0.1:
            return "L"
        if roll < 0.15:
            return "LW"
        if roll < 0.2:
            return f"{self.value(1, 28, hot)},L"
        return self.field(1, 31, hot)

    def day_of_week(self, hot: list[int]) -> str:
        rng, roll = self.rng, self.rng.random()
        weekday = self.name(self.value(0, 7, hot), 0, WEEKDAYS)
        if roll < 0.12:
            return f"{weekday}#{rng.randint(1, 5)}"
        if roll < 0.2:
            return f"{self.value(0, 7, hot)}L"
        if roll < 0.25:
            return f"{weekday}#{rng.randint(1, 5)},{rng.randint(0, 7)}L"
        return self.field(0, 7, hot, WEEKDAYS)


def expression(rng: random.Random, zone: ZoneInfo, start: int) -> str:
    near = [datetime.fromtimestamp(start + k * 1800, zone) for k in range(-4, 8)]
    fields = Fields(rng)
    parts = []
    if rng.random() < 0.3:  # seconds first
        parts.append(fields.field(0, 59, [0, 1, 30, 59]))
    parts.append(fields.field(0, 59, [0, 15, 20, 30, 45, 59]))
    parts.append(fields.field(0, 23, sorted({w.hour for w in near})))
    restricted = rng.choice(["", "day", "month", "weekday", "day weekday", "day month weekday"])
    days = sorted({w.day for w in near})
    weekdays = sorted({(w.weekday() + 1) % 7 for w in near})
    star = ["*", "*", "*/2", "*/3"]
    parts.append(fields.day_of_month(days) if "day" in restricted else rng.choice(star))
    months = sorted({w.month for w in near})
    parts.append(fields.field(1, 12, months, MONTHS) if "month" in restricted else "*")
    parts.append(fields.day_of_week(weekdays) if "weekday" in restricted else rng.choice(star))
    return " ".join(parts)


@dataclass(frozen=True)
class Case:
    expression: str
    zone_name: str
    start: int

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)

    def __str__(self) -> str:
        start = datetime.fromtimestamp(self.start, self.zone).isoformat()
        return f"{self.expression!r} in {self.zone_name} after {start}"


@functools.cache
def cases(count: int, seed: int = SEED) -> list[Case]:
    rng = random.Random(seed)
    made = []
    for number in range(count):
        name = ZONES[number % len(ZONES)]
        found = [change for change in zone_changes(name) if change < 1830297600]  # to 2027
        if found and rng.random() < 0.9:
            start = rng.choice(found) + rng.choice(AROUND)
        else:
            start = rng.randint(1735689600, 1830297600)  # 2025 to 2027
        made.append(Case(expression(rng, ZoneInfo(name), start), name, start))
    return made


# -- the three answers ----------------------------------------------------------------------------


def ours(case: Case, count: int = FIRES) -> list[int] | None:
    """Our next fires; None when we refuse the expression (it never fires)."""
    try:
        spec = parse_cron(case.expression, "diff")
    except CronSyntaxError as error:
        assert "never fires" in str(error), f"{case}: {error}"
        return None
    return CronTimeline(spec, case.zone).upcoming(case.start, count)


class Stuck(Exception):
    """cronsim went round in circles ("wildcard, stuck" in CRONSIM_ERRORS)."""


class BoundedCronSim(CronSim):
    """cronsim, stopped if one search takes more steps than any real search needs."""

    STEPS = 200_000

    def __next__(self) -> datetime:
        self.steps = 0
        return super().__next__()

    def tick(self, seconds: int = 1) -> None:
        self.steps += 1
        if self.steps > self.STEPS:
            raise Stuck
        super().tick(seconds)


# Fires, None for "never", or "stuck".
Answer = list[int] | None | str


def cronsim(case: Case, count: int = FIRES) -> Answer:
    """cronsim's next fires; None when it finds none (it searches 50 years) or refuses."""
    start = datetime.fromtimestamp(case.start, case.zone)
    try:
        found = itertools.islice(BoundedCronSim(case.expression, start), count)
        fires = [int(d.timestamp()) for d in found]
    except CronSimError:
        return None
    except Stuck:
        return "stuck"
    return fires or None


def ours_before(case: Case, count: int = FIRES) -> list[int] | None:
    """Our previous fires, latest first."""
    try:
        line = CronTimeline(parse_cron(case.expression, "diff"), case.zone)
    except CronSyntaxError:
        return None
    fires: list[int] = []
    fire = line.prev_before(case.start)
    while fire is not None and len(fires) < count:
        fires.append(fire)
        fire = line.prev_before(fire)
    return fires


def cronsim_before(case: Case, count: int = FIRES) -> Answer:
    start = datetime.fromtimestamp(case.start, case.zone)
    try:
        found = itertools.islice(BoundedCronSim(case.expression, start, reverse=True), count)
        return [int(d.timestamp()) for d in found] or None
    except CronSimError:
        return None


def is_wildcard(expression: str) -> bool:
    """DESIGN "Time", written again here: a second, minute or hour field starting with `*`."""
    parts = expression.split()
    return any(p.startswith("*") for p in parts[: len(parts) - 3])


def readings(wall: datetime, zone: ZoneInfo) -> tuple[int, int]:
    return (
        int(wall.replace(tzinfo=zone).timestamp()),
        int(wall.replace(tzinfo=zone, fold=1).timestamp()),
    )


def after_gap(lo: int, hi: int, zone: ZoneInfo) -> int:
    """The first instant in (lo, hi] with the offset hi has."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if offset_s(mid, zone) != offset_s(hi, zone) else (lo, mid)
    return hi


def by_the_rule(case: Case, count: int = FIRES) -> list[int] | None:
    """DESIGN "Time" applied to the wall times cronsim matches without a zone: a wildcard job
    fires at every reading of each (none in a gap), a fixed-time job at the first (after the
    gap for a skipped one)."""
    zone, start = case.zone, case.start
    # From the lowest wall time an instant after the start can have (a jump back may be near).
    lowest = start + min(offset_s(start, zone), offset_s(start + 10800, zone))
    try:
        walls = CronSim(case.expression, datetime(1970, 1, 1) + timedelta(seconds=lowest))
    except CronSimError:
        return None
    wildcard = is_wildcard(case.expression)
    fires: set[int] = set()
    for wall in itertools.islice(walls, 100_000):
        first, second = readings(wall, zone)
        if first <= second:
            new = {first, second} if wildcard else {first}
        else:
            new = set() if wildcard else {after_gap(second, first, zone)}
        fires.update(f for f in new if f > start)
        # Later wall times first occur no earlier than this one (or than its gap).
        if len(fires) >= count and min(first, second) > sorted(fires)[count - 1]:
            break
    return sorted(fires)[:count] or None


def cronsim_error(case: Case, mine: list[int] | None, theirs: Answer) -> str | None:
    """Which of CRONSIM_ERRORS explains cronsim's different answer, if one does."""
    rewritten = Case(_a_a_k_as_a_k(case.expression), case.zone_name, case.start)
    if rewritten.expression != case.expression and theirs == ours(rewritten):
        return "a-a/k"
    if mine != by_the_rule(case):
        return None  # not a DST matter: the fields mean something else to cronsim
    last = max([*(mine or []), *(theirs if isinstance(theirs, list) else [])], default=case.start)
    near = range(case.start - 10800, last + 10800)
    if not any(change in near for change in zone_changes(case.zone_name)):
        return None  # no DST change near: cronsim's DST errors cannot be why
    if not is_wildcard(case.expression):
        if len(case.expression.split()) == 6:
            return "six fields, fixed time"
        if datetime.fromtimestamp(case.start, case.zone).fold:
            return "fixed time, from a repeated hour"
        return None
    return "wildcard, stuck" if theirs == "stuck" else "wildcard, hour step"


def _a_a_k_as_a_k(expression: str) -> str:
    def item(text: str) -> str:
        head, _, step = text.partition("/")
        low, dash, high = head.partition("-")
        return f"{low}/{step}" if step and dash and low == high else text

    return " ".join(",".join(item(i) for i in f.split(",")) for f in expression.split())


@functools.cache
def comparison() -> tuple[int, Counter[str], list[str]]:
    """(cases compared, cronsim errors by kind, differences nothing explains)."""
    explained: Counter[str] = Counter()
    unexplained: list[str] = []
    made = cases(CASES)
    for case in made:
        mine, theirs = ours(case), cronsim(case)
        if mine == theirs:
            continue
        kind = cronsim_error(case, mine, theirs)
        if kind is None:
            mine_text, theirs_text = show(mine, case), show(theirs, case)
            unexplained.append(f"{case}:\n  ours    {mine_text}\n  cronsim {theirs_text}")
        else:
            explained[kind] += 1
    return len(made), explained, unexplained


def show(fires: Answer, case: Case) -> str:
    if fires is None or isinstance(fires, str):
        return fires or "never"
    return ", ".join(datetime.fromtimestamp(f, case.zone).isoformat() for f in fires)


# -- the tests ------------------------------------------------------------------------------------


def test_every_difference_from_cronsim_is_one_of_its_own_errors() -> None:
    _, _, unexplained = comparison()
    assert not unexplained, f"{len(unexplained)} unexplained:\n" + "\n".join(unexplained[:10])


def test_going_back_agrees_with_cronsim_where_no_dst_applies() -> None:
    # cronsim's reverse walk has DST errors of its own; where there is no DST, it must agree.
    for case in cases(CASES // 3):
        if case.zone_name in ("UTC", "Asia/Kolkata"):
            mine = ours_before(case)
            assert (mine or None) == cronsim_before(case), f"{case}"


def test_cronsim_agrees_outright_in_most_cases() -> None:
    # Most generated cases lie near a DST change on purpose; still, the errors are exceptions.
    compared, explained, _ = comparison()
    assert sum(explained.values()) < compared * 0.1, explained
    assert set(explained) <= set(CRONSIM_ERRORS)


def test_the_generator_reaches_every_form() -> None:
    made = cases(CASES)
    texts = [case.expression for case in made]
    forms = {
        "6 fields": lambda e: len(e.split()) == 6,
        "list": lambda e: "," in e,
        "step": lambda e: "*/" in e,
        "range step": lambda e: any("-" in f and "/" in f for f in e.split()),
        "L": lambda e: " L " in f" {e} ",
        "LW": lambda e: "LW" in e,
        "#": lambda e: "#" in e,
        "wL": lambda e: any(f[:1].isdigit() and f.endswith("L") for f in e.split()[-1:]),
        "month name": lambda e: any(m in e for m in MONTHS),
        "weekday name": lambda e: any(d in e for d in WEEKDAYS),
        "both day fields": lambda e: e.split()[-3][0] != "*" and e.split()[-1][0] != "*",
        "wildcard job": is_wildcard,
        "fixed-time job": lambda e: not is_wildcard(e),
    }
    missing = [name for name, present in forms.items() if not any(map(present, texts))]
    assert not missing
    assert {case.zone_name for case in made} == set(ZONES)


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


@pytest.mark.parametrize(
    ("expression", "zone", "after", "kind"),
    [
        pytest.param(
            "59 30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00+01:00",
            "six fields, fixed time", id="6 fields at 02:30:59 on Berlin's gap day",
        ),
        pytest.param(
            "30 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00",
            "fixed time, from a repeated hour", id="02:30 from inside Berlin's repeated hour",
        ),
        pytest.param(
            "* 5-14 * * *", "Australia/Lord_Howe", "2027-10-03T01:00:00+10:30",
            "wildcard, hour step", id="every minute from 05:00 after Lord Howe's 30-minute gap",
        ),
        pytest.param(
            "*/23 */2 * * *", "Pacific/Chatham", "2026-04-05T00:45:00+13:45",
            "wildcard, hour step", id="the second run of 02:45-03:45 in Chatham",
        ),
    ],
)  # fmt: skip
def test_each_cronsim_error_shown_on_one_case(
    expression: str, zone: str, after: str, kind: str
) -> None:
    case = Case(expression, zone, ts(after))
    mine, theirs = ours(case), cronsim(case)
    assert mine != theirs
    assert cronsim_error(case, mine, theirs) == kind
