"""Cron fire times across DST transitions, as DESIGN "Time" states the rules (Debian's cron(8)).

- A WILDCARD job (second, minute or hour field starting with `*`) runs by the new wall time:
  wall times a spring-forward gap skips do not run; repeated ones run in both occurrences.
- A FIXED-TIME job (no such field) runs once per wall time: a fire in a gap runs once, at the
  first instant after the gap (several skipped fires collapse into that one); a fire in a
  repeated hour runs once, at its first occurrence.

2026 transitions used below (local wall times):
- Europe/Berlin: Mar 29 02:00 CET -> 03:00 CEST; Oct 25 03:00 CEST -> 02:00 CET.
- America/New_York: Mar 8 02:00 EST -> 03:00 EDT; Nov 1 02:00 EDT -> 01:00 EST.
- Australia/Sydney (southern hemisphere): DST ends Apr 5 (first Sunday of April) 03:00 AEDT ->
  02:00 AEST; starts Oct 4 (first Sunday of October) 02:00 AEST -> 03:00 AEDT.
- Australia/Lord_Howe (a 30-minute shift): Apr 5 02:00 +11:00 -> 01:30 +10:30; Oct 4 02:00
  +10:30 -> 02:30 +11:00.
- America/Santiago (shifts at midnight): Sep 6 00:00 -04:00 -> 01:00 -03:00.
- America/Havana (shifts at midnight): Mar 8 00:00 -05:00 -> 01:00 -04:00; Nov 1 01:00 -04:00
  -> 00:00 -05:00.
- Pacific/Chatham (+12:45): Sep 27 02:45 -> 03:45 +13:45.
- Africa/Casablanca (summer time suspended for Ramadan): Feb 15 03:00 +01:00 -> 02:00 +00:00;
  Mar 22 02:00 +00:00 -> 03:00 +01:00.
- Antarctica/Troll (a two-hour shift): Mar 29 01:00 +00:00 -> 03:00 +02:00; Oct 25 03:00
  +02:00 -> 01:00 +00:00.

Every case starts from a fixed instant; expected fires are written as local wall time with
offset, which names one instant without ambiguity.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from scheduler.core.cronexpr import parse_cron
from scheduler.core.timeline import CronTimeline


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def timeline(expression: str, zone: str, name: str = "dst-case") -> CronTimeline:
    return CronTimeline(parse_cron(expression, name), ZoneInfo(zone))


def local(fire: int | None, zone: str) -> str | None:
    return None if fire is None else datetime.fromtimestamp(fire, ZoneInfo(zone)).isoformat()


CASES = [
    # -- Europe/Berlin ---------------------------------------------------------------------
    pytest.param(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        id="fixed-hour job in the Berlin spring-forward gap runs once at 03:00",
    ),
    pytest.param(
        "0 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"],
        id="job at the very start of the Berlin gap runs at 03:00",
    ),
    pytest.param(
        "15,45 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:15:00+02:00", "2026-03-30T02:45:00+02:00"],
        id="two fires in the Berlin gap collapse into one at 03:00",
    ),
    pytest.param(
        "30 2,3 * * *",
        "Europe/Berlin",
        "2026-03-29T00:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"],
        id="the collapsed Berlin gap fire is followed by the 03:30 fire as usual",
    ),
    pytest.param(
        "20 * * * *",
        "Europe/Berlin",
        "2026-03-29T01:00:00+01:00",
        ["2026-03-29T01:20:00+01:00", "2026-03-29T03:20:00+02:00", "2026-03-29T04:20:00+02:00"],
        id="wildcard hourly job at :20 skips the Berlin 02:20 that never happens",
    ),
    pytest.param(
        "*/30 * * * *",
        "Europe/Berlin",
        "2026-03-29T01:00:00+01:00",
        ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"],
        id="half-hourly job skips the Berlin gap and goes on at 03:00, a time of its own",
    ),
    pytest.param(
        "*/30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        id="minute-star job in the fixed 02:00 hour does not run on the Berlin gap day",
    ),
    pytest.param(
        "30 30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:30+02:00"],
        id="seconds-first fire in the Berlin gap runs at 03:00:00 sharp, not 03:00:30",
    ),
    pytest.param(
        "*/10 * * * * *",
        "Europe/Berlin",
        "2026-03-29T01:59:40+01:00",
        ["2026-03-29T01:59:50+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:00:10+02:00"],
        id="every-10-seconds job skips the Berlin gap",
    ),
    pytest.param(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00+02:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        id="fixed-hour job runs once on Berlin fall-back night",
    ),
    pytest.param(
        "*/20 2-3 * * *",
        "Europe/Berlin",
        "2026-10-25T01:59:00+02:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:20:00+02:00",
            "2026-10-25T02:40:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:20:00+01:00",
            "2026-10-25T02:40:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
        id="minute-star job in an hour range runs in both occurrences of the Berlin hour",
    ),
    pytest.param(
        "0,20,40 2-3 * * *",
        "Europe/Berlin",
        "2026-10-25T01:59:00+02:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:20:00+02:00",
            "2026-10-25T02:40:00+02:00",
            "2026-10-25T03:00:00+01:00",
        ],
        id="fixed-time job in an hour range skips the whole repeated Berlin hour",
    ),
    pytest.param(
        "*/30 2 * * *",
        "Europe/Berlin",
        "2026-10-25T01:00:00+02:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-26T02:00:00+01:00",
        ],
        id="minute-star job in the fixed 02:00 hour runs in both Berlin occurrences",
    ),
    pytest.param(
        "*/30 * * * *",
        "Europe/Berlin",
        "2026-10-25T01:45:00+02:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
        id="half-hourly job runs in both occurrences of the repeated Berlin hour",
    ),
    pytest.param(
        "30 */1 * * *",
        "Europe/Berlin",
        "2026-10-25T01:45:00+02:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:30:00+01:00"],
        id="hour-step job runs in both occurrences of the repeated Berlin hour",
    ),
    pytest.param(
        "0 30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00+02:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        id="seconds-first fixed-hour job runs once on Berlin fall-back night",
    ),
    pytest.param(
        "*/30 * * * *",
        "Europe/Berlin",
        "2026-10-25T02:59:59+02:00",
        ["2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"],
        id="one second before Berlin's clocks go back a wildcard job's next fire is 02:00 again",
    ),
    pytest.param(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-25T02:45:00+02:00",
        ["2026-10-26T02:30:00+01:00"],
        id="inside the first occurrence of Berlin's repeated hour a fixed-hour job waits a day",
    ),
    pytest.param(
        "0 0 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"],
        id="midnight job is untouched by the Berlin transition",
    ),
    # -- America/New_York ------------------------------------------------------------------
    pytest.param(
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T12:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        id="fixed-hour job in the New York spring-forward gap runs once at 03:00",
    ),
    pytest.param(
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        id="fixed-hour job runs once on New York fall-back night",
    ),
    pytest.param(
        "*/15 * * * *",
        "America/New_York",
        "2026-11-01T01:40:00-04:00",
        [
            "2026-11-01T01:45:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:15:00-05:00",
            "2026-11-01T01:30:00-05:00",
        ],
        id="quarter-hourly job runs in both occurrences of New York's repeated 01:00 hour",
    ),
    pytest.param(
        "45 * * * *",
        "America/New_York",
        "2026-03-08T01:00:00-05:00",
        ["2026-03-08T01:45:00-05:00", "2026-03-08T03:45:00-04:00", "2026-03-08T04:45:00-04:00"],
        id="wildcard hourly job at :45 skips New York's 02:45 that never happens",
    ),
    pytest.param(
        "30 * * * *",
        "America/New_York",
        "2026-03-08T01:00:00-05:00",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00", "2026-03-08T04:30:00-04:00"],
        id="the issue's example: 30 * * * * in New York runs 06:30Z, 07:30Z, 08:30Z",
    ),
    pytest.param(
        "45 1-3 * * *",
        "America/New_York",
        "2026-03-08T01:00:00-05:00",
        ["2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:45:00-04:00"],
        id="fixed-time job at 02:45 runs at 03:00 after New York's gap",
    ),
    # -- Australia/Sydney (southern hemisphere) --------------------------------------------
    pytest.param(
        "30 2 * * *",
        "Australia/Sydney",
        "2026-10-03T12:00:00+10:00",
        ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"],
        id="fixed-hour job in the Sydney October gap runs once at 03:00",
    ),
    pytest.param(
        "30 2 * * *",
        "Australia/Sydney",
        "2026-04-04T12:00:00+11:00",
        ["2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"],
        id="fixed-hour job runs once on Sydney's April fall-back night",
    ),
    pytest.param(
        "0 * * * *",
        "Australia/Sydney",
        "2026-04-05T01:30:00+11:00",
        ["2026-04-05T02:00:00+11:00", "2026-04-05T02:00:00+10:00", "2026-04-05T03:00:00+10:00"],
        id="hourly job runs in both occurrences of Sydney's repeated 02:00 hour",
    ),
    pytest.param(
        "0 3 * * *",
        "Australia/Sydney",
        "2026-04-04T12:00:00+11:00",
        ["2026-04-05T03:00:00+10:00", "2026-04-06T03:00:00+10:00"],
        id="job at 03:00 runs once when Sydney's clocks go back from 03:00 to 02:00",
    ),
    # -- Australia/Lord_Howe (30-minute shift) ---------------------------------------------
    pytest.param(
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
        id="fixed-hour job in Lord Howe's 30-minute gap runs at 02:30",
    ),
    pytest.param(
        "45 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00+10:30",
        ["2026-10-04T02:45:00+11:00", "2026-10-05T02:45:00+11:00"],
        id="fixed-hour job after Lord Howe's 30-minute gap is not moved",
    ),
    pytest.param(
        "*/20 * * * *",
        "Australia/Lord_Howe",
        "2026-10-04T01:50:00+10:30",
        ["2026-10-04T02:40:00+11:00", "2026-10-04T03:00:00+11:00", "2026-10-04T03:20:00+11:00"],
        id="every-20-minutes job skips the 02:00 and 02:20 of Lord Howe's 30-minute gap",
    ),
    pytest.param(
        "0,20,40 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-04T01:50:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:40:00+11:00", "2026-10-05T02:00:00+11:00"],
        id="fixed-time job collapses Lord Howe's two gap fires into one at 02:30",
    ),
    pytest.param(
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T12:00:00+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
        id="fixed-hour job runs once in Lord Howe's repeated half hour",
    ),
    pytest.param(
        "*/15 * * * *",
        "Australia/Lord_Howe",
        "2026-04-05T01:20:00+11:00",
        [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ],
        id="quarter-hourly job runs in both occurrences of Lord Howe's repeated half hour",
    ),
    pytest.param(
        "45 * * * *",
        "Australia/Lord_Howe",
        "2026-04-05T01:00:00+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-05T01:45:00+10:30", "2026-04-05T02:45:00+10:30"],
        id="hourly job at :45 runs twice, 30 minutes apart, on Lord Howe fall-back night",
    ),
    # -- America/Santiago (the shift is at midnight) ---------------------------------------
    pytest.param(
        "0 0 * * *",
        "America/Santiago",
        "2026-09-05T12:00:00-04:00",
        ["2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"],
        id="midnight job on Santiago's skipped midnight runs at 01:00",
    ),
    pytest.param(
        "*/30 0 * * *",
        "America/Santiago",
        "2026-09-05T12:00:00-04:00",
        ["2026-09-07T00:00:00-03:00", "2026-09-07T00:30:00-03:00"],
        id="wildcard job in the midnight hour has none on Santiago's skipped midnight",
    ),
    # -- America/Havana (the clocks change at midnight) ----------------------------------------
    pytest.param(
        "0 0 * * *",
        "America/Havana",
        "2026-03-07T12:00:00-05:00",
        ["2026-03-08T01:00:00-04:00", "2026-03-09T00:00:00-04:00"],
        id="midnight job on Havana's skipped midnight runs at 01:00",
    ),
    pytest.param(
        "*/30 0 * * *",
        "America/Havana",
        "2026-03-07T12:00:00-05:00",
        ["2026-03-09T00:00:00-04:00", "2026-03-09T00:30:00-04:00"],
        id="wildcard job in the midnight hour skips Havana's missing midnight hour",
    ),
    pytest.param(
        "0 0 * * *",
        "America/Havana",
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"],
        id="midnight job runs once when Havana's midnight hour repeats",
    ),
    pytest.param(
        "*/30 0 * * *",
        "America/Havana",
        "2026-10-31T12:00:00-04:00",
        [
            "2026-11-01T00:00:00-04:00",
            "2026-11-01T00:30:00-04:00",
            "2026-11-01T00:00:00-05:00",
            "2026-11-01T00:30:00-05:00",
            "2026-11-02T00:00:00-05:00",
        ],
        id="wildcard job runs in both occurrences of Havana's repeated midnight hour",
    ),
    # -- Pacific/Chatham (+12:45, the clocks change at 02:45) ---------------------------------
    pytest.param(
        "0 3 * * *",
        "Pacific/Chatham",
        "2026-09-26T12:00:00+12:45",
        ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"],
        id="fixed-time 03:00 in Chatham's 02:45-03:45 gap runs at 03:45",
    ),
    pytest.param(
        "0 * * * *",
        "Pacific/Chatham",
        "2026-09-27T01:30:00+12:45",
        ["2026-09-27T02:00:00+12:45", "2026-09-27T04:00:00+13:45"],
        id="hourly job skips the 03:00 Chatham's gap takes away",
    ),
    # -- Africa/Casablanca (summer time suspended for Ramadan) --------------------------------
    pytest.param(
        "30 2 * * *",
        "Africa/Casablanca",
        "2026-02-14T12:00:00+01:00",
        ["2026-02-15T02:30:00+01:00", "2026-02-16T02:30:00+00:00"],
        id="fixed-time job runs once when Casablanca repeats 02:00-03:00 for Ramadan",
    ),
    pytest.param(
        "30 * * * *",
        "Africa/Casablanca",
        "2026-02-15T02:00:00+01:00",
        ["2026-02-15T02:30:00+01:00", "2026-02-15T02:30:00+00:00", "2026-02-15T03:30:00+00:00"],
        id="wildcard job runs in both occurrences of Casablanca's repeated hour",
    ),
    pytest.param(
        "30 2 * * *",
        "Africa/Casablanca",
        "2026-03-21T12:00:00+00:00",
        ["2026-03-22T03:00:00+01:00", "2026-03-23T02:30:00+01:00"],
        id="fixed-time job in Casablanca's gap after Ramadan runs at 03:00",
    ),
    # -- Antarctica/Troll (two-hour shift) ----------------------------------------------------
    pytest.param(
        "30 1 * * *",
        "Antarctica/Troll",
        "2026-03-28T12:00:00+00:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T01:30:00+02:00"],
        id="fixed-hour job in Troll's two-hour gap runs once at 03:00",
    ),
    pytest.param(
        "0 * * * *",
        "Antarctica/Troll",
        "2026-10-25T00:30:00+02:00",
        [
            "2026-10-25T01:00:00+02:00",
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T01:00:00+00:00",
            "2026-10-25T02:00:00+00:00",
        ],
        id="hourly job runs in both occurrences of Troll's two repeated hours",
    ),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), CASES)
def test_fires_follow_the_dst_rules(
    expression: str, zone: str, after: str, expected: list[str]
) -> None:
    fires = timeline(expression, zone).upcoming(ts(after), len(expected))
    assert [local(fire, zone) for fire in fires] == expected


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), CASES)
def test_prev_before_walks_the_same_fires_backwards(
    expression: str, zone: str, after: str, expected: list[str]
) -> None:
    line = timeline(expression, zone)
    fires = [ts(text) for text in expected]
    for earlier, later in itertools.pairwise(fires):
        assert local(line.prev_before(later), zone) == local(earlier, zone)
        assert line.prev_before(earlier + 1) == earlier
        assert line.next_after(earlier) == later
    before_first = line.prev_before(fires[0])
    assert before_first is not None
    assert before_first <= ts(after)


@pytest.mark.parametrize(
    ("expression", "zone", "before", "expected"),
    [
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-29T03:00:01+02:00",
            "2026-03-29T03:00:00+02:00",
            id="one second after the collapsed Berlin gap fire finds it",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-29T03:00:00+02:00",
            "2026-03-28T02:30:00+01:00",
            id="at the collapsed Berlin gap fire finds the day before",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T02:30:01+01:00",
            "2026-10-25T02:30:00+02:00",
            id="after the repeated 02:30 finds only the first Berlin occurrence",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T02:10:00+01:00",
            "2026-10-25T02:30:00+02:00",
            id="inside the repeated Berlin hour finds the first occurrence, later in wall time",
        ),
        pytest.param(
            "*/30 * * * *",
            "Europe/Berlin",
            "2026-10-25T02:10:00+01:00",
            "2026-10-25T02:00:00+01:00",
            id="inside the repeated Berlin hour a wildcard job finds the second occurrence",
        ),
        pytest.param(
            "*/30 * * * *",
            "Europe/Berlin",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+02:00",
            id="at the start of the repeated Berlin hour a wildcard job finds 02:30 summer time",
        ),
        pytest.param(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-05T01:40:00+10:30",
            "2026-04-05T01:45:00+11:00",
            id="inside Lord Howe's repeated half hour finds the first occurrence",
        ),
        pytest.param(
            "*/20 * * * *",
            "Australia/Lord_Howe",
            "2026-10-04T02:45:00+11:00",
            "2026-10-04T02:40:00+11:00",
            id="after Lord Howe's gap a wildcard job finds its 02:40",
        ),
        pytest.param(
            "*/20 * * * *",
            "Australia/Lord_Howe",
            "2026-10-04T02:35:00+11:00",
            "2026-10-04T01:40:00+10:30",
            id="across Lord Howe's gap a wildcard job finds the 01:40 before it",
        ),
        pytest.param(
            "0,20,40 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-04T02:35:00+11:00",
            "2026-10-04T02:30:00+11:00",
            id="after Lord Howe's gap a fixed-time job finds the collapsed 02:30 fire",
        ),
    ],
)
def test_prev_before_around_transitions(
    expression: str, zone: str, before: str, expected: str
) -> None:
    assert local(timeline(expression, zone).prev_before(ts(before)), zone) == expected


@pytest.mark.parametrize(
    ("expression", "zone", "day_start", "day_end", "count"),
    [
        pytest.param(
            "0 * * * *",
            "Europe/Berlin",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
            23,
            id="hourly job fires 23 times on the Berlin spring-forward day",
        ),
        pytest.param(
            "20 * * * *",
            "Europe/Berlin",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
            23,
            id="wildcard hourly job at :20 fires 23 times on the Berlin spring-forward day",
        ),
        pytest.param(
            "20 0-23 * * *",
            "Europe/Berlin",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
            24,
            id="fixed-time job at :20 of every hour fires 24 times on the Berlin gap day",
        ),
        pytest.param(
            "20 0-23 * * *",
            "Europe/Berlin",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
            24,
            id="fixed-time job at :20 of every hour fires 24 times on the Berlin fall-back day",
        ),
        pytest.param(
            "0 * * * *",
            "Europe/Berlin",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
            25,
            id="hourly job fires 25 times on the Berlin fall-back day",
        ),
        pytest.param(
            "*/30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
            4,
            id="the issue's example: */30 2 * * * fires 4 times on the Berlin fall-back day",
        ),
        pytest.param(
            "*/30 2 * * *",
            "Europe/Berlin",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
            0,
            id="half-hourly job in the fixed 02:00 hour does not fire on the Berlin gap day",
        ),
        pytest.param(
            "0,30 2 * * *",
            "Europe/Berlin",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
            1,
            id="fixed-time 02:00 and 02:30 fire once, at 03:00, on the Berlin gap day",
        ),
        pytest.param(
            "0,30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
            2,
            id="fixed-time 02:00 and 02:30 fire once each on the Berlin fall-back day",
        ),
        pytest.param(
            "*/30 * * * *",
            "Australia/Lord_Howe",
            "2026-04-05T00:00:00+11:00",
            "2026-04-06T00:00:00+10:30",
            49,
            id="half-hourly job fires 49 times on Lord Howe's 24.5-hour day",
        ),
        pytest.param(
            "*/30 * * * *",
            "Australia/Lord_Howe",
            "2026-10-04T00:00:00+10:30",
            "2026-10-05T00:00:00+11:00",
            47,
            id="half-hourly job fires 47 times on Lord Howe's 23.5-hour day",
        ),
    ],
)
def test_fires_per_dst_day(
    expression: str, zone: str, day_start: str, day_end: str, count: int
) -> None:
    line = timeline(expression, zone)
    # count_between is exclusive at both ends; include midnight itself.
    assert line.count_between(ts(day_start) - 1, ts(day_end), 1000) == count
    assert len([f for f in line.upcoming(ts(day_start) - 1, 100) if f < ts(day_end)]) == count
