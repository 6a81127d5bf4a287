"""Debian cron's rules, each stated once in the core: the day rule, and H kept as it was.

The issue "Cron that fires exactly when Debian's cron would" named its cases; they are here with
its dates. The DST kind of a job is in test_timeline.py (`is_wildcard_job`) and its effect in
test_cron_dst.py.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.cronday import day_matches, matching_days
from scheduler.core.cronexpr import CronSyntaxError, parse_cron
from scheduler.core.timeline import CronTimeline


def utc_days(expression: str, after: str, count: int, zone: str = "UTC") -> list[str]:
    line = CronTimeline(parse_cron(expression, "rules"), ZoneInfo(zone))
    start = int(datetime.fromisoformat(after).timestamp())
    return [
        datetime.fromtimestamp(f, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        for f in line.upcoming(start, count)
    ]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param(
            "0 0 */2 * 1",
            ["2026-11-09T00:00Z", "2026-11-23T00:00Z", "2026-12-07T00:00Z"],
            id="*/2 with a weekday: odd days that are Mondays, not every odd day and Monday",
        ),
        pytest.param(
            "0 12 16-22 * 0#1",
            ["2026-11-01T12:00Z", "2026-11-16T12:00Z", "2026-11-17T12:00Z"],
            id="0#1 with 16-22: the first Sunday and the 16th-22nd, not 'never fires'",
        ),
        pytest.param(
            "0 12 5-21 * 1#2",
            ["2026-11-05T12:00Z", "2026-11-06T12:00Z", "2026-11-07T12:00Z"],
            id="1#2 with 5-21 starts on the 5th",
        ),
        pytest.param(
            "0 9 * * 5L",
            ["2026-11-27T09:00Z", "2026-12-25T09:00Z", "2027-01-29T09:00Z"],
            id="Quartz's 5L is the last Friday",
        ),
        pytest.param(
            "0 9 LW * *",
            ["2026-11-30T09:00Z", "2026-12-31T09:00Z", "2027-01-29T09:00Z"],
            id="LW is the last Monday-to-Friday",
        ),
    ],
)
def test_the_issues_day_cases(expression: str, expected: list[str]) -> None:
    assert utc_days(expression, "2026-10-31T00:00:00+00:00", len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        pytest.param(
            "30 * * * *", "America/New_York", "2026-03-08T06:00:00+00:00",
            ["2026-03-08T06:30Z", "2026-03-08T07:30Z", "2026-03-08T08:30Z"],
            id="a wildcard job does not run the 02:30 New York skips",
        ),
        pytest.param(
            "*/30 2 * * *", "Europe/Berlin", "2026-10-24T22:00:00+00:00",
            ["2026-10-25T00:00Z", "2026-10-25T00:30Z", "2026-10-25T01:00Z", "2026-10-25T01:30Z"],
            id="a wildcard job runs Berlin's repeated 02:00-03:00 twice",
        ),
    ],
)  # fmt: skip
def test_the_issues_dst_cases(expression: str, zone: str, after: str, expected: list[str]) -> None:
    assert utc_days(expression, after, len(expected), zone) == expected


def days(expression: str, year: int, month: int) -> list[int]:
    mask = matching_days(parse_cron(expression, "rules").days, year, month)
    return [d for d in range(1, 32) if mask >> d & 1]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("0 0 * * *", list(range(1, 31)), id="every day of a 30-day month"),
        pytest.param("0 0 13 * 5", [6, 13, 20, 27], id="the 13th or a Friday"),
        pytest.param("0 0 13 * */5", [13], id="the 13th and a Sunday or Friday: Friday the 13th"),
        pytest.param("0 0 */10 * *", [1, 11, 21], id="*/10 alone"),
        pytest.param("0 0 */10 * 0", [1], id="*/10 and Sunday"),
        pytest.param("0 0 1-10 * 0", [*range(1, 11), 15, 22, 29], id="1-10 or Sunday"),
        pytest.param("0 0 L * *", [30], id="L is the 30th in November"),
        pytest.param("0 0 L * 0", [1, 8, 15, 22, 29, 30], id="L or Sunday"),
        pytest.param("0 0 L * */7", [], id="L and Sunday (the 30th is a Monday)"),
        pytest.param("0 0 LW * *", [30], id="LW: Monday the 30th"),
        pytest.param("0 0 28W * *", [27], id="28W: Saturday the 28th moves to Friday"),
        pytest.param("0 0 1W * *", [2], id="1W: Sunday the 1st moves to Monday the 2nd"),
        pytest.param("0 0 * * 0#1,6L", [1, 28], id="the first Sunday and the last Saturday"),
        pytest.param("0 0 * * 1#5", [30], id="the fifth Monday"),
        pytest.param("0 0 * * 2#5", [], id="no fifth Tuesday"),
        pytest.param("0 0 ? * 7", [1, 8, 15, 22, 29], id="? and 7, Sunday"),
    ],
)
def test_which_days_of_november_2026_match(expression: str, expected: list[int]) -> None:
    assert calendar.weekday(2026, 11, 1) == calendar.SUNDAY
    assert days(expression, 2026, 11) == expected
    rule = parse_cron(expression, "rules").days
    assert [d for d in range(1, 31) if day_matches(rule, 2026, 11, d)] == expected


@pytest.mark.parametrize(
    "expression",
    [
        "H * * * *",
        "H H * * *",
        "H/15 * * * *",
        "H(0-29) * * * *",
        "H(30-59)/10 * * * *",
        "H H(0-5) * * 1-5",
        "H H * * H",
        "H H H * *",
        "H H H H *",
        "0 H/3 * * *",
        "H * * * * *",
        "H/20 H * * * *",
    ],
)
@pytest.mark.parametrize("name", ["a", "nightly-report", "cache-warm", "job-000123", "zz.top"])
def test_hashed_values_are_the_ones_croniter_gave(expression: str, name: str) -> None:
    # A schedule's H minute is what its users and dashboards know: replacing croniter's parser
    # must not move one.
    start = datetime(2026, 1, 7, 12, tzinfo=timezone.utc)
    six = len(expression.split()) == 6
    theirs = croniter(expression, start, hash_id=name.encode(), second_at_beginning=six)
    expected = [int(theirs.get_next(float)) for _ in range(4)]
    line = CronTimeline(parse_cron(expression, name), ZoneInfo("UTC"))
    assert line.upcoming(int(start.timestamp()), 4) == expected


FIELD_TEXT = st.text("0123456789*/,-#?LWHlwh()MONFRIJANSUT²", min_size=1, max_size=8)


@settings(max_examples=400, deadline=None)
@given(st.lists(FIELD_TEXT, min_size=5, max_size=6))
def test_any_field_text_is_a_cron_or_a_sentence(fields: list[str]) -> None:
    # Validation must never crash on a typo: every failure is a CronSyntaxError with a reason.
    try:
        spec = parse_cron(" ".join(fields), "fuzz")
    except CronSyntaxError as error:
        assert str(error).startswith("cron ")
        return
    line = CronTimeline(spec, ZoneInfo("Europe/Berlin"))
    fire = line.next_after(1767787200)
    assert fire is not None, "an accepted expression fires"
    assert line.prev_before(fire + 1) == fire
