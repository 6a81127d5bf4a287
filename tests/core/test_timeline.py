"""The fire-time engine away from DST: cron dialect, `every`, `at`, bounds, counting, jitter.

Everything is computed from fixed instants; nothing reads a clock.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from scheduler.core.config import parse_config
from scheduler.core.cronexpr import CronSyntaxError, parse_cron
from scheduler.core.timeline import AtTimeline, CronTimeline, EveryTimeline, Timeline, jitter_ms

UTC = ZoneInfo("UTC")
# Wednesday 2026-01-07 12:00:00 UTC: the fixed "now" of most cases.
WED_NOON = 1767787200


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def utc(fire: int) -> str:
    return datetime.fromtimestamp(fire, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cron(expression: str, zone: str = "UTC", name: str = "job", **bounds: int) -> CronTimeline:
    return CronTimeline(parse_cron(expression, name), ZoneInfo(zone), **bounds)


# -- the cron dialect ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param(
            "*/15 * * * * *",
            ["2026-01-07T12:00:15Z", "2026-01-07T12:00:30Z", "2026-01-07T12:00:45Z"],
            id="six fields put seconds first: every 15 seconds",
        ),
        pytest.param(
            "5 * * * * *",
            ["2026-01-07T12:00:05Z", "2026-01-07T12:01:05Z", "2026-01-07T12:02:05Z"],
            id="six fields: second 5 of every minute",
        ),
        pytest.param(
            "5 * * * *",
            ["2026-01-07T12:05:00Z", "2026-01-07T13:05:00Z", "2026-01-07T14:05:00Z"],
            id="five fields: minute 5 of every hour",
        ),
        pytest.param(
            "0 30 9 * * *",
            ["2026-01-08T09:30:00Z", "2026-01-09T09:30:00Z", "2026-01-10T09:30:00Z"],
            id="six fields: 09:30:00 every day",
        ),
        pytest.param(
            "0 9 * * 1-5",
            ["2026-01-08T09:00:00Z", "2026-01-09T09:00:00Z", "2026-01-12T09:00:00Z"],
            id="weekdays skip the weekend",
        ),
        pytest.param(
            "0 9 * * MON-FRI",
            ["2026-01-08T09:00:00Z", "2026-01-09T09:00:00Z", "2026-01-12T09:00:00Z"],
            id="weekday names work like numbers",
        ),
        pytest.param(
            "0 9-9 * * *",
            ["2026-01-08T09:00:00Z", "2026-01-09T09:00:00Z", "2026-01-10T09:00:00Z"],
            id="an equal range 9-9 is hour 9 alone, as in classic cron",
        ),
        pytest.param(
            "0 9 L * *",
            ["2026-01-31T09:00:00Z", "2026-02-28T09:00:00Z", "2026-03-31T09:00:00Z"],
            id="L is the last day of each month",
        ),
        pytest.param(
            "0 9 15W * *",
            ["2026-01-15T09:00:00Z", "2026-02-16T09:00:00Z", "2026-03-16T09:00:00Z"],
            id="15W moves a Sunday 15th to Monday the 16th",
        ),
        pytest.param(
            "0 9 1W * *",
            ["2026-02-02T09:00:00Z", "2026-03-02T09:00:00Z", "2026-04-01T09:00:00Z"],
            id="1W moves a Sunday 1st forward, never into the previous month",
        ),
        pytest.param(
            "0 9 * * 1#2",
            ["2026-01-12T09:00:00Z", "2026-02-09T09:00:00Z", "2026-03-09T09:00:00Z"],
            id="1#2 is the second Monday of the month",
        ),
        pytest.param(
            "0 9 * * 0#5",
            ["2026-03-29T09:00:00Z", "2026-05-31T09:00:00Z", "2026-08-30T09:00:00Z"],
            id="0#5 is a fifth Sunday, which most months lack",
        ),
        pytest.param(
            "0 9 * * L5",
            ["2026-01-30T09:00:00Z", "2026-02-27T09:00:00Z", "2026-03-27T09:00:00Z"],
            id="L5 is the last Friday of the month",
        ),
        pytest.param(
            "0 9 * * 5L",
            ["2026-01-30T09:00:00Z", "2026-02-27T09:00:00Z", "2026-03-27T09:00:00Z"],
            id="5L, Quartz's spelling, is the last Friday too",
        ),
        pytest.param(
            "0 9 * * FRIL",
            ["2026-01-30T09:00:00Z", "2026-02-27T09:00:00Z", "2026-03-27T09:00:00Z"],
            id="FRIL names the last Friday",
        ),
        pytest.param(
            "0 9 LW * *",
            ["2026-01-30T09:00:00Z", "2026-02-27T09:00:00Z", "2026-03-31T09:00:00Z"],
            id="LW is the last Monday-to-Friday of the month",
        ),
        pytest.param(
            "0 9 ? * MON",
            ["2026-01-12T09:00:00Z", "2026-01-19T09:00:00Z", "2026-01-26T09:00:00Z"],
            id="? leaves the day of month open",
        ),
        pytest.param(
            "0 0 */2 * 1",
            ["2026-01-19T00:00:00Z", "2026-02-09T00:00:00Z", "2026-02-23T00:00:00Z"],
            id="a day field starting with * makes both day fields count: odd days that are Mondays",
        ),
        pytest.param(
            "0 0 13 * 5",
            ["2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z"],
            id="two restricted day fields: either one matches",
        ),
        pytest.param(
            "0 0 1-31 * 1",
            ["2026-01-08T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-10T00:00:00Z"],
            id="1-31 restricts the day of month, so the OR makes it every day",
        ),
        pytest.param(
            "0 12 16-22 * 0#1",
            [
                "2026-01-16T12:00:00Z",
                "2026-01-17T12:00:00Z",
                "2026-01-18T12:00:00Z",
                "2026-01-19T12:00:00Z",
                "2026-01-20T12:00:00Z",
                "2026-01-21T12:00:00Z",
                "2026-01-22T12:00:00Z",
                "2026-02-01T12:00:00Z",
                "2026-02-16T12:00:00Z",
            ],
            id="# with a restricted day of month: either matches",
        ),
        pytest.param(
            "0 12 5-21 * 1#2",
            ["2026-01-08T12:00:00Z", "2026-01-09T12:00:00Z"],
            id="1#2 beside 5-21: the range goes on from today",
        ),
        pytest.param(
            "0 12 L * */2",
            [
                "2026-01-31T12:00:00Z",
                "2026-02-28T12:00:00Z",
                "2026-03-31T12:00:00Z",
                "2026-04-30T12:00:00Z",
                "2026-05-31T12:00:00Z",
                "2026-06-30T12:00:00Z",
                "2026-10-31T12:00:00Z",
            ],
            id="L with a day of week from star: last days on Sun, Tue, Thu or Sat only",
        ),
        pytest.param(
            "0 9 * * 1/2",
            ["2026-01-09T09:00:00Z", "2026-01-11T09:00:00Z", "2026-01-12T09:00:00Z"],
            id="1/2 in the day of week runs on to 7, Sunday, as 1-7/2 does in Vixie cron",
        ),
        pytest.param(
            "0 9 * * FRI-MON",
            [
                "2026-01-09T09:00:00Z",
                "2026-01-10T09:00:00Z",
                "2026-01-11T09:00:00Z",
                "2026-01-12T09:00:00Z",
                "2026-01-16T09:00:00Z",
            ],
            id="a weekday range may wrap around the week",
        ),
        pytest.param(
            "0 22-1 * * *",
            [
                "2026-01-07T22:00:00Z",
                "2026-01-07T23:00:00Z",
                "2026-01-08T00:00:00Z",
                "2026-01-08T01:00:00Z",
                "2026-01-08T22:00:00Z",
            ],
            id="an hour range may wrap around midnight",
        ),
        pytest.param(
            "5-5/2 * * * *",
            ["2026-01-07T12:05:00Z", "2026-01-07T13:05:00Z"],
            id="a stepped equal range 5-5/2 is minute 5 alone, as in Vixie cron",
        ),
        pytest.param(
            "0 9 * JAN,mar */7",
            [
                "2026-01-11T09:00:00Z",
                "2026-01-18T09:00:00Z",
                "2026-01-25T09:00:00Z",
                "2026-03-01T09:00:00Z",
            ],
            id="names in any case; */7 in the day of week is Sunday (0 and 7)",
        ),
        pytest.param(
            "0 0 29 2 *",
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
            id="February 29th waits for leap years",
        ),
        pytest.param(
            "@yearly",
            ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
            id="@yearly is midnight on January 1st",
        ),
        pytest.param(
            "@annually",
            ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
            id="@annually is @yearly",
        ),
        pytest.param(
            "@monthly",
            ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"],
            id="@monthly is midnight on the 1st",
        ),
        pytest.param(
            "@weekly",
            ["2026-01-11T00:00:00Z", "2026-01-18T00:00:00Z"],
            id="@weekly is midnight on Sunday",
        ),
        pytest.param(
            "@daily",
            ["2026-01-08T00:00:00Z", "2026-01-09T00:00:00Z"],
            id="@daily is midnight",
        ),
        pytest.param(
            "@midnight",
            ["2026-01-08T00:00:00Z", "2026-01-09T00:00:00Z"],
            id="@midnight is @daily",
        ),
        pytest.param(
            "@hourly",
            ["2026-01-07T13:00:00Z", "2026-01-07T14:00:00Z"],
            id="@hourly is minute 0, not a hashed minute",
        ),
        pytest.param(
            "@DAILY",
            ["2026-01-08T00:00:00Z", "2026-01-09T00:00:00Z"],
            id="macros ignore case",
        ),
        pytest.param(
            "  0   9  *  *  * ",
            ["2026-01-08T09:00:00Z", "2026-01-09T09:00:00Z"],
            id="extra whitespace between fields is fine",
        ),
    ],
)
def test_cron_dialect(expression: str, expected: list[str]) -> None:
    fires = cron(expression).upcoming(WED_NOON, len(expected))
    assert [utc(fire) for fire in fires] == expected


def test_cron_fields_are_read_in_the_schedules_zone() -> None:
    fires = cron("0 9 * * *", "Asia/Kolkata").upcoming(WED_NOON, 2)
    assert [utc(fire) for fire in fires] == ["2026-01-08T03:30:00Z", "2026-01-09T03:30:00Z"]


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        pytest.param("* * * *", "has 4 fields", id="four fields are refused"),
        pytest.param("0 0 * * * * *", "has 7 fields", id="seven fields are refused"),
        pytest.param("@reboot", "unknown cron macro", id="an unknown macro is refused"),
        pytest.param("61 * * * *", "invalid", id="minute 61 is refused"),
        pytest.param("* 24 * * *", "invalid", id="hour 24 is refused"),
        pytest.param("60 * * * * *", "invalid", id="second 60 is refused"),
        pytest.param("0 0 31 2 *", "never fires", id="February 31st never fires"),
        pytest.param("0 0 30 2 *", "never fires", id="February 30th never fires"),
        pytest.param("0 0 31 4,6,9,11 *", "never fires", id="the 31st of a 30-day month"),
        pytest.param("0 0 31 2 */2", "never fires", id="February 31st on an even weekday"),
        pytest.param("0 0 * * 1#6", "# takes 1 to 5", id="a sixth weekday is refused"),
        pytest.param("0 0 * * L", "is not a number", id="L alone in the day of week is refused"),
        pytest.param("*/0 * * * *", "step 0", id="a step of 0 is refused"),
        pytest.param("0 0 0 * *", "out of range 1-31", id="day 0 is refused"),
        pytest.param("0 0 * 13 *", "out of range 1-12", id="month 13 is refused"),
        pytest.param("0 0 * * 8", "out of range 0-7", id="weekday 8 is refused"),
        pytest.param("0 0 * * MOO", "not a number or a name", id="an unknown name is refused"),
        pytest.param("1,,2 * * * *", "empty item", id="an empty list item is refused"),
        pytest.param("? * * * *", "day fields only", id="? outside the day fields"),
        pytest.param("0 H(9-3) * * *", "needs a below b", id="a reversed H range is refused"),
        pytest.param("", "has 0 fields", id="an empty expression is refused"),
        pytest.param("0 3 * *", "has 4 fields", id="four fields are refused"),
        pytest.param("*", "has 1 field;", id="one field is refused, counted in the singular"),
        # croniter draws R per process: replicas would each fire at a minute of their own.
        pytest.param("R R * * *", "use H instead", id="random R is refused"),
        pytest.param("0 R(0-5) * * *", "use H instead", id="random R with a range is refused"),
        pytest.param("0,R/5 * * * *", "use H instead", id="random R inside a list is refused"),
    ],
)
def test_unusable_cron_expressions_are_refused(expression: str, complaint: str) -> None:
    with pytest.raises(CronSyntaxError, match=complaint):
        parse_cron(expression, "job")


@pytest.mark.parametrize(
    ("expression", "wildcard"),
    [
        pytest.param("0 * * * *", True, id="an hour star makes a wildcard job"),
        pytest.param("0 */2 * * *", True, id="an hour step from star makes a wildcard job"),
        pytest.param("*/15 2 * * *", True, id="a minute star makes a wildcard job at a fixed hour"),
        pytest.param("* 2 * * *", True, id="every minute of a fixed hour is a wildcard job"),
        pytest.param("0 1-5/2 * * *", False, id="a stepped range without a star is fixed-time"),
        pytest.param("0-59/5 2 * * *", False, id="minutes stepped from 0 without a star are fixed"),
        pytest.param("0 2 * * *", False, id="one hour and minute is fixed-time"),
        pytest.param("0 1,2 * * *", False, id="a list of hours is fixed-time"),
        pytest.param("0 1-3 * * *", False, id="a range of hours is fixed-time"),
        pytest.param("0 H * * *", False, id="a hashed hour is fixed-time"),
        pytest.param("0 H/3 * * *", False, id="a hashed hour step names fixed hours"),
        pytest.param("5,*/10 2 * * *", False, id="only a field's first character counts"),
        pytest.param("0 2 */2 * *", False, id="a star in a day field does not count"),
        pytest.param("0 0 2 * * *", False, id="six fields read the hour from the third field"),
        pytest.param("0 0 * * * *", True, id="six fields with hour star"),
        pytest.param("*/10 30 2 * * *", True, id="a seconds star makes a wildcard job"),
        pytest.param("30 30 2 * * *", False, id="six fixed fields are fixed-time"),
        pytest.param("@hourly", True, id="@hourly is a wildcard job"),
        pytest.param("@daily", False, id="@daily is fixed-time"),
    ],
)
def test_which_jobs_are_wildcard_jobs(expression: str, wildcard: bool) -> None:
    assert parse_cron(expression, "job").wildcard is wildcard


@pytest.mark.parametrize(
    ("expression", "shortest_s"),
    [
        pytest.param("*/10 * * * * *", 10, id="every 10 seconds"),
        pytest.param("0,50 * * * * *", 10, id="seconds wrap around the minute"),
        pytest.param("* * * * *", 60, id="every minute"),
        pytest.param("*/15 * * * *", 900, id="every 15 minutes"),
        pytest.param("0 * * * *", 3600, id="hourly"),
        pytest.param("0 */6 * * *", 5 * 3600, id="every 6 hours, minus an hour for DST"),
        pytest.param("0 3 * * *", 23 * 3600, id="daily, minus an hour for DST"),
        pytest.param("@weekly", 23 * 3600, id="weekly is bounded like daily"),
    ],
)
def test_shortest_interval_is_a_lower_bound(expression: str, shortest_s: int) -> None:
    assert parse_cron(expression, "job").shortest_interval_s == shortest_s


# -- H: hashed by the schedule's name -----------------------------------------------------------


def test_names_with_an_r_are_not_mistaken_for_random() -> None:
    assert parse_cron("0 9 * MAR FRI", "job").fields == "0 9 * MAR FRI"


def test_hashed_minute_is_stable_for_one_name() -> None:
    first = cron("H * * * *", name="nightly-report").upcoming(WED_NOON, 3)
    again = cron("H * * * *", name="nightly-report").upcoming(WED_NOON, 3)
    assert first == again
    minutes = {datetime.fromtimestamp(f, timezone.utc).minute for f in first}
    assert len(minutes) == 1, "an hourly H job fires at the same minute every hour"
    assert [b - a for a, b in itertools.pairwise(first)] == [3600, 3600]


def test_hashed_minutes_spread_different_names() -> None:
    minutes = {
        (cron("H * * * *", name=f"job-{i}").next_after(WED_NOON) or 0) // 60 % 60
        for i in range(100)
    }
    assert len(minutes) >= 30, f"100 names landed on only {len(minutes)} distinct minutes"


@pytest.mark.parametrize(
    ("expression", "minutes", "period_s"),
    [
        pytest.param("H/15 * * * *", range(60), 900, id="H/15 fires every 15 minutes"),
        pytest.param("H(0-29) * * * *", range(30), 3600, id="H(0-29) picks a minute in 0-29"),
        pytest.param("H(30-44) * * * *", range(30, 45), 3600, id="H(30-44) picks one in 30-44"),
    ],
)
def test_hashed_ranges_and_steps(expression: str, minutes: range, period_s: int) -> None:
    offsets = set()
    for name in ("a", "b", "cache-warm", "nightly-report", "hourly-rollup"):
        fires = cron(expression, name=name).upcoming(WED_NOON, 3)
        assert all(datetime.fromtimestamp(f, timezone.utc).minute in minutes for f in fires)
        assert [b - a for a, b in itertools.pairwise(fires)] == [period_s, period_s]
        offsets.add(fires[0] % period_s)
    assert len(offsets) > 1, "different names get different minutes"


def test_hashed_hour_and_minute_make_a_daily_job() -> None:
    fires = cron("H H * * *", name="nightly-report").upcoming(WED_NOON, 3)
    assert [b - a for a, b in itertools.pairwise(fires)] == [86400, 86400]


# -- every ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval_s", "after", "expected"),
    [
        pytest.param(900, "2026-01-07T12:07:00Z", "2026-01-07T12:15:00Z", id="15m aligns to :15"),
        pytest.param(
            900, "2026-01-07T12:15:00Z", "2026-01-07T12:30:00Z", id="15m from a fire skips it"
        ),
        pytest.param(
            600, "2026-01-07T12:09:59Z", "2026-01-07T12:10:00Z", id="10m one second early"
        ),
        pytest.param(
            7 * 60, "2026-01-07T12:00:00Z", "2026-01-07T12:06:00Z", id="7m aligns to the epoch"
        ),
        pytest.param(
            86400, "2026-01-07T12:00:00Z", "2026-01-08T00:00:00Z", id="1d is UTC midnight"
        ),
        pytest.param(1, "2026-01-07T12:00:00Z", "2026-01-07T12:00:01Z", id="1s fires every second"),
    ],
)
def test_every_aligns_to_the_unix_epoch(interval_s: int, after: str, expected: str) -> None:
    line = EveryTimeline(interval_s)
    fire = line.next_after(ts(after))
    assert fire is not None
    assert utc(fire) == expected
    assert fire % interval_s == 0
    assert line.prev_before(fire) == fire - interval_s


def test_every_with_a_start_aligns_to_the_start() -> None:
    start = ts("2026-01-07T12:17:05Z")
    line = EveryTimeline(3600, start_ts=start)
    assert line.next_after(ts("2026-01-01T00:00:00Z")) == start, "nothing fires before start"
    assert line.next_after(start - 1) == start, "start itself is a fire"
    assert line.next_after(start) == start + 3600
    assert line.upcoming(start + 1, 2) == [start + 3600, start + 7200]
    assert line.prev_before(start) is None
    assert line.prev_before(start + 3600) == start


# -- at --------------------------------------------------------------------------------------------


def test_at_fires_once() -> None:
    at = ts("2026-12-01T09:00:00+01:00")
    line = AtTimeline(at)
    assert line.next_after(at - 1) == at
    assert line.upcoming(WED_NOON, 5) == [at]
    assert line.next_after(at) is None
    assert line.prev_before(at + 1) == at
    assert line.prev_before(at) is None
    assert line.shortest_interval_s is None


def test_at_in_the_past_has_no_more_fires() -> None:
    line = AtTimeline(ts("2025-12-01T09:00:00+01:00"))
    assert line.next_after(WED_NOON) is None
    assert line.upcoming(WED_NOON, 5) == []
    assert line.count_between(WED_NOON, WED_NOON + 86400 * 365, 100) == 0


# -- start / end bounds, inclusive, for every kind ---------------------------------------------

START = ts("2026-01-07T12:00:00Z")
END = ts("2026-01-07T15:00:00Z")


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(cron("0 * * * *", start_ts=START, end_ts=END), id="cron"),
        pytest.param(EveryTimeline(3600, start_ts=START, end_ts=END), id="every"),
    ],
)
def test_start_and_end_are_inclusive_bounds(line: Timeline) -> None:
    hour = 3600
    assert line.upcoming(START - 10 * hour, 10) == [START, START + hour, START + 2 * hour, END]
    assert line.next_after(START - 1) == START, "a fire exactly at start counts"
    assert line.next_after(END - 1) == END, "a fire exactly at end counts"
    assert line.next_after(END) is None, "nothing after end"
    assert line.prev_before(START) is None, "nothing before start"
    assert line.prev_before(END + 10 * hour) == END
    assert line.prev_before(START + 1) == START
    assert line.count_between(START - 1, END + 1, 100) == 4
    assert line.count_between(START, END, 100) == 2


def test_cron_start_between_fires_starts_at_the_next_fire() -> None:
    line = cron("0 * * * *", start_ts=START + 1)
    assert line.next_after(0) == START + 3600
    assert line.prev_before(START + 3600) is None


@pytest.mark.parametrize(
    ("at", "fires"),
    [
        pytest.param(START, [START], id="at exactly start fires"),
        pytest.param(END, [END], id="at exactly end fires"),
        pytest.param(START - 1, [], id="at before start never fires"),
        pytest.param(END + 1, [], id="at after end never fires"),
    ],
)
def test_at_respects_start_and_end(at: int, fires: list[int]) -> None:
    line = AtTimeline(at, start_ts=START, end_ts=END)
    assert line.upcoming(0, 5) == fires
    assert line.prev_before(END + 86400) == (fires[0] if fires else None)


def test_bounds_come_from_yaml_in_the_schedules_zone() -> None:
    config = parse_config(
        """
schedules:
  window:
    cron: "0 * * * *"
    timezone: Europe/Berlin
    start: 2026-01-07 13:00
    end: "2026-01-07T16:00:00+01:00"
    job: x
"""
    )
    line = config.schedules[0].timeline
    assert [utc(f) for f in line.upcoming(0, 10)] == [
        "2026-01-07T12:00:00Z",
        "2026-01-07T13:00:00Z",
        "2026-01-07T14:00:00Z",
        "2026-01-07T15:00:00Z",
    ]


H = 3600
HOURLY = cron("0 * * * *")
MINUTELY = EveryTimeline(60)


# -- counting and listing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "after", "before", "limit", "count"),
    [
        pytest.param(HOURLY, WED_NOON, WED_NOON + 3 * H, 100, 2, id="both ends excluded"),
        pytest.param(HOURLY, WED_NOON - 1, WED_NOON + 3 * H + 1, 100, 4, id="ends included"),
        pytest.param(HOURLY, WED_NOON, WED_NOON + 24 * H, 5, 5, id="the limit caps the count"),
        pytest.param(HOURLY, WED_NOON, WED_NOON, 100, 0, id="an empty interval"),
        pytest.param(HOURLY, WED_NOON + 10, WED_NOON, 100, 0, id="a reversed interval"),
        pytest.param(MINUTELY, WED_NOON, WED_NOON + H, 1000, 59, id="every counts arithmetically"),
        pytest.param(MINUTELY, WED_NOON, WED_NOON + 9000 * H, 1000, 1000, id="every, limited"),
        pytest.param(MINUTELY, WED_NOON, WED_NOON + 30, 1000, 0, id="every, no fire inside"),
        pytest.param(MINUTELY, WED_NOON + 10, WED_NOON, 1000, 0, id="every, reversed interval"),
    ],
)
def test_count_between(line: Timeline, after: int, before: int, limit: int, count: int) -> None:
    assert line.count_between(after, before, limit) == count


@pytest.mark.parametrize("interval_s", [1, 7, 60, 900, 3600])
def test_every_counts_like_stepping_one_by_one(interval_s: int) -> None:
    line = EveryTimeline(interval_s, start_ts=WED_NOON + 13, end_ts=WED_NOON + 5000)
    for after, before in [(WED_NOON, WED_NOON + 6000), (WED_NOON + 100, WED_NOON + 4000)]:
        stepped = len([f for f in line.upcoming(after, 10_000) if f < before])
        assert line.count_between(after, before, 10_000) == stepped
        assert line.count_between(after, before, 3) == min(3, stepped)


def test_upcoming_stops_at_the_end_bound() -> None:
    line = cron("*/10 * * * * *", end_ts=WED_NOON + 30)
    assert line.upcoming(WED_NOON, 10) == [WED_NOON + 10, WED_NOON + 20, WED_NOON + 30]
    assert line.upcoming(WED_NOON, 0) == []


def test_prev_before_mirrors_next_after() -> None:
    for line in (cron("*/7 3 * * 1-5", "America/New_York"), cron("0 9 L * *"), EveryTimeline(420)):
        fires = line.upcoming(WED_NOON, 20)
        for earlier, later in itertools.pairwise(fires):
            assert line.prev_before(later) == earlier
            assert line.next_after(earlier) == later
            assert line.prev_before(earlier + 1) == earlier


# -- jitter ------------------------------------------------------------------------------------


def test_jitter_is_the_same_on_every_call() -> None:
    assert jitter_ms("cache-warm", WED_NOON, 30) == jitter_ms("cache-warm", WED_NOON, 30)


@pytest.mark.parametrize("bound_s", [1, 2, 30, 599, 3600])
def test_jitter_stays_within_zero_and_the_bound(bound_s: int) -> None:
    delays = [jitter_ms("cache-warm", WED_NOON + 600 * i, bound_s) for i in range(500)]
    assert all(0 <= d < bound_s * 1000 for d in delays)
    assert len(set(delays)) > 1, "delays vary from fire to fire"


@pytest.mark.parametrize("bound_s", [0, -5])
def test_no_jitter_bound_means_no_delay(bound_s: int) -> None:
    assert jitter_ms("cache-warm", WED_NOON, bound_s) == 0


def test_jitter_differs_between_schedules_with_the_same_fire_time() -> None:
    delays = {jitter_ms(f"job-{i}", WED_NOON, 60) for i in range(50)}
    assert len(delays) > 40


def test_jitter_is_pinned_so_replicas_and_releases_agree() -> None:
    # Replicas running different releases must derive the same delay: the hash is part of the
    # contract, so any change to it shows up here.
    assert [jitter_ms("cache-warm", WED_NOON + 600 * i, 30) for i in range(3)] == [
        28387,
        27412,
        14698,
    ]
    assert jitter_ms("nightly-report", 1795312800, 3600) == 2940333
