"""Durations as users write them, and instants as text (scheduler.durations, scheduler.timefmt)."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from scheduler.core.durations import format_duration, parse_duration_s
from scheduler.core.timefmt import parse_instant, rfc3339_local, rfc3339_utc, rfc3339_utc_ms

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

# 2026-11-22T02:00:00Z, the run in DESIGN's stream-entry example.
NOV_22_2AM_UTC = 1795312800


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        pytest.param("90s", 90, id="ninety seconds in seconds"),
        pytest.param("15m", 900, id="fifteen minutes"),
        pytest.param("1h30m", 5400, id="an hour and a half"),
        pytest.param("2d", 172800, id="two days"),
        pytest.param("1d2h3m4s", 93784, id="every unit once, largest first"),
        pytest.param(45, 45, id="a bare YAML integer is seconds"),
        pytest.param("45", 45, id="a digit string is seconds"),
        pytest.param(0, 0, id="zero is a duration"),
        pytest.param("0s", 0, id="zero seconds spelled out"),
        pytest.param(60.0, 60, id="a whole float is accepted as seconds"),
        pytest.param(" 1H ", 3600, id="surrounding spaces and upper case are forgiven"),
        pytest.param("90m", 5400, id="a unit may exceed the next larger one"),
    ],
)
def test_durations_people_write_are_understood(written: object, seconds: int) -> None:
    assert parse_duration_s(written) == seconds


@pytest.mark.parametrize(
    ("written", "complaint"),
    [
        pytest.param("", "not a duration", id="an empty string is refused"),
        pytest.param("15 minutes", "not a duration", id="words instead of units are refused"),
        pytest.param("1.5h", "not a duration", id="a fraction of an hour is refused"),
        pytest.param("5ms", "not a duration", id="milliseconds are not a unit"),
        pytest.param("1 h", "not a duration", id="a space between number and unit is refused"),
        pytest.param("-5", "not a duration", id="a negative digit string is refused"),
        pytest.param(-5, "negative", id="a negative integer is refused"),
        pytest.param(1.5, "whole number", id="a fractional float is refused"),
        pytest.param(True, "not a duration", id="a YAML boolean is not one second"),
        pytest.param(None, "not a duration", id="a missing value is refused"),
        pytest.param(["1m"], "not a duration", id="a list is refused"),
        pytest.param("30m1h", "reorders", id="units out of order are refused"),
        pytest.param("1h1h", "repeats", id="a repeated unit is refused"),
    ],
)
def test_bad_durations_are_refused_with_a_reason(written: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as caught:
        parse_duration_s(written)
    if complaint == "not a duration":
        assert "90s" in str(caught.value), "the message shows an example of a good duration"


@pytest.mark.parametrize(
    ("seconds", "spelled"),
    [
        pytest.param(0, "0s", id="zero is 0s"),
        pytest.param(59, "59s", id="under a minute stays in seconds"),
        pytest.param(90, "1m30s", id="ninety seconds is a minute and a half"),
        pytest.param(5400, "1h30m", id="an hour and a half"),
        pytest.param(86400, "1d", id="a day"),
        pytest.param(90061, "1d1h1m1s", id="every unit"),
    ],
)
def test_durations_are_spelled_canonically(seconds: int, spelled: str) -> None:
    assert format_duration(seconds) == spelled
    assert parse_duration_s(spelled) == seconds


# -- instants as text --------------------------------------------------------------------------


def test_utc_instants_print_as_rfc3339_with_z() -> None:
    assert rfc3339_utc(NOV_22_2AM_UTC) == "2026-11-22T02:00:00Z"
    assert rfc3339_utc(0) == "1970-01-01T00:00:00Z"


def test_enqueue_times_keep_milliseconds() -> None:
    assert rfc3339_utc_ms(NOV_22_2AM_UTC + 0.004) == "2026-11-22T02:00:00.004Z"
    assert rfc3339_utc_ms(NOV_22_2AM_UTC) == "2026-11-22T02:00:00.000Z"


@pytest.mark.parametrize(
    ("ts", "zone", "text"),
    [
        pytest.param(NOV_22_2AM_UTC, BERLIN, "2026-11-22T03:00:00+01:00", id="Berlin in winter"),
        pytest.param(1782000000, BERLIN, "2026-06-21T02:00:00+02:00", id="Berlin in summer"),
        pytest.param(1793511000, NEW_YORK, "2026-11-01T01:30:00-04:00", id="New York, first 01:30"),
        pytest.param(
            1793514600, NEW_YORK, "2026-11-01T01:30:00-05:00", id="New York, repeated 01:30"
        ),
    ],
)
def test_local_instants_carry_their_offset(ts: int, zone: ZoneInfo, text: str) -> None:
    assert rfc3339_local(ts, zone) == text
    assert datetime.fromisoformat(text).timestamp() == ts


@pytest.mark.parametrize(
    ("text", "zone", "ts"),
    [
        pytest.param(
            "2026-12-01T09:00:00+01:00", BERLIN, 1796112000, id="an offset wins over the zone"
        ),
        pytest.param("2026-12-01T08:00:00Z", BERLIN, 1796112000, id="a trailing Z means UTC"),
        pytest.param("2026-12-01T08:00:00z", BERLIN, 1796112000, id="a lower-case z means UTC"),
        pytest.param("2026-12-01 09:00", BERLIN, 1796112000, id="no offset means the default zone"),
        pytest.param("2026-12-01T08:00:00", timezone.utc, 1796112000, id="no offset in UTC"),
        pytest.param("1796112000", BERLIN, 1796112000, id="Unix seconds"),
        pytest.param(" 1796112000 ", BERLIN, 1796112000, id="Unix seconds with spaces"),
        pytest.param("-86400", BERLIN, -86400, id="negative Unix seconds"),
    ],
)
def test_instants_are_parsed_from_iso_8601_or_unix_seconds(
    text: str, zone: ZoneInfo, ts: int
) -> None:
    moment = parse_instant(text, zone)
    assert moment.tzinfo is not None
    assert moment.timestamp() == ts


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("tomorrow", id="a word"),
        pytest.param("2026-13-01", id="month thirteen"),
        pytest.param("", id="nothing"),
        pytest.param("12/01/2026", id="an American date"),
    ],
)
def test_unparseable_instants_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601") as caught:
        parse_instant(text, BERLIN)
    assert "Unix seconds" in str(caught.value)
