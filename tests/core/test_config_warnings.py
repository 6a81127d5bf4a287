"""What validation says besides problems: warnings about dates, bounds that can never fire, time
zone abbreviations, counted nouns, and where a missing file was looked for.

Warnings depend on `now`, which the core never reads: every case passes NOW in, so the cases read
the same whatever day the suite runs.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timezone
from pathlib import Path

import pytest

from scheduler.core.config import load_config, parse_config
from scheduler.core.schedule import ConfigError
from scheduler.core.wording import plural
from scheduler.core.zonehint import ABBREVIATIONS, zone_hint

NOW = int(datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc).timestamp())


def warnings_of(text: str, now_ts: int | None = NOW) -> list[tuple[int, str]]:
    config = parse_config(text, "schedules.yaml", now_ts)
    return [(w.line, w.message) for w in config.warnings]


def problems_of(text: str) -> list[tuple[int, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "schedules.yaml", NOW)
    return [(p.line, p.message) for p in caught.value.problems]


# -- warnings: valid, but probably over -------------------------------------------------------

# Each case: the YAML, then every expected warning as (line, fragments its message must hold).
WARNINGS = [
    pytest.param(
        "schedules:\n  launch:\n    at: 2026-12-01T09:00:00+01:00\n    job: promo.start\n",
        [(3, ["'launch'", "at 2026-12-01T09:00:00+01:00 is in the past", "2026-12-03T12:00:00Z"])],
        id="a one-shot in the past is warned about on its at line",
    ),
    pytest.param(
        "schedules:\n  launch:\n    at: 2030-12-01T09:00:00+01:00\n    job: promo.start\n",
        [],
        id="a one-shot ahead is not",
    ),
    pytest.param(
        "schedules:\n  promo:\n    every: 1h\n    end: 2026-11-30T00:00:00Z\n    job: x\n",
        [(4, ["'promo'", "end 2026-11-30T00:00:00Z is in the past", "will not fire again"])],
        id="an end in the past is warned about on its end line",
    ),
    pytest.param(
        "defaults:\n  end: 2026-11-30T00:00:00Z\nschedules:\n  a:\n    every: 1h\n    job: x\n",
        [(2, ["'a'", "end 2026-11-30T00:00:00Z is in the past"])],
        id="an end inherited from defaults is warned about where it is written",
    ),
    pytest.param(
        "schedules:\n  promo:\n    every: 1h\n    end: 2027-01-01T00:00:00Z\n    job: x\n",
        [],
        id="an end ahead is not",
    ),
    pytest.param(
        "schedules:\n  old:\n    at: 2026-01-01T00:00:00Z\n    end: 2026-02-01T00:00:00Z\n"
        "    job: x\n",
        [(3, ["at 2026-01-01T00:00:00Z is in the past"])],
        id="a one-shot past both its at and its end is warned about once",
    ),
    pytest.param(
        "schedules:\n  later:\n    every: 1h\n    start: 2027-01-01T00:00:00Z\n    job: x\n",
        [],
        id="a start ahead is how a schedule is planned, not a mistake",
    ),
]


@pytest.mark.parametrize(("text", "expected"), WARNINGS)
def test_each_warning_names_its_line(text: str, expected: list[tuple[int, list[str]]]) -> None:
    found = warnings_of(text)
    assert [line for line, _ in found] == [line for line, _ in expected], found
    for (_, message), (_, fragments) in zip(found, expected, strict=True):
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in {message!r}"


def test_without_now_there_are_no_warnings_so_the_daemon_never_sees_any() -> None:
    text = "schedules:\n  launch:\n    at: 2020-01-01T00:00:00Z\n    job: promo.start\n"
    assert warnings_of(text, now_ts=None) == []


def test_a_warning_never_makes_a_file_invalid() -> None:
    text = "schedules:\n  launch:\n    at: 2020-01-01T00:00:00Z\n    job: promo.start\n"
    warned = parse_config(text, "schedules.yaml", NOW)
    assert [s.name for s in warned.schedules] == ["launch"]
    assert warned == parse_config(text, "schedules.yaml"), "warnings are not part of the config"


def test_warnings_print_as_file_line_warning() -> None:
    text = "schedules:\n  launch:\n    at: 2020-01-01T00:00:00Z\n    job: promo.start\n"
    [line] = parse_config(text, "etc/schedules.yaml", NOW).warning_lines()
    assert line.startswith("etc/schedules.yaml:3: warning: schedule 'launch': at 2020-01-01")


def test_the_repositorys_example_warns_about_nothing_for_years() -> None:
    path = Path(__file__).resolve().parents[2] / "schedules.yaml"
    until = int(datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp())
    assert load_config(str(path), now_ts=until).warnings == ()


# -- bounds that can never fire are errors, whatever the date ---------------------------------

# A start after the end is refused, not warned about: it holds on any day, the schedule could
# never fire, and the daemon (which does not look at warnings) would run it doing nothing.
NEVER = [
    pytest.param(
        "schedules:\n  w:\n    every: 1h\n    start: 2027-02-01T00:00:00Z\n"
        "    end: 2027-01-01T00:00:00Z\n    job: x\n",
        [(5, ["end 2027-01-01T00:00:00Z is before start 2027-02-01T00:00:00Z", "never fire"])],
        id="a start after the end is an error on the end line",
    ),
    pytest.param(
        'schedules:\n  w:\n    cron: "45 * * * *"\n    start: 2027-01-01T00:00:00Z\n'
        "    end: 2027-01-01T00:30:00Z\n    job: x\n",
        [(5, ["'w' never fires", "cron '45 * * * *' has no fire between start", "widen"])],
        id="a window no fire falls in is an error",
    ),
    pytest.param(
        "schedules:\n  w:\n    at: 2027-03-01T00:00:00Z\n    start: 2027-01-01T00:00:00Z\n"
        "    end: 2027-02-01T00:00:00Z\n    job: x\n",
        [(5, ["at 2027-03-01T00:00:00Z is not between start 2027-01-01T00:00:00Z and end"])],
        id="a one-shot outside its window is an error",
    ),
    pytest.param(
        "schedules:\n  w:\n    at: 2027-03-01T00:00:00Z\n    start: 2027-04-01T00:00:00Z\n"
        "    job: x\n",
        [(4, ["is not after start 2027-04-01T00:00:00Z"])],
        id="a one-shot before its start is an error on the start line",
    ),
]


@pytest.mark.parametrize(("text", "expected"), NEVER)
def test_bounds_that_can_never_fire_are_refused(
    text: str, expected: list[tuple[int, list[str]]]
) -> None:
    found = problems_of(text)
    assert [line for line, _ in found] == [line for line, _ in expected], found
    for (_, message), (_, fragments) in zip(found, expected, strict=True):
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in {message!r}"


def test_a_window_of_one_instant_on_a_fire_is_valid() -> None:
    config = parse_config(
        'schedules:\n  w:\n    cron: "0 * * * *"\n    start: 2027-01-01T00:00:00Z\n'
        "    end: 2027-01-01T00:00:00Z\n    job: x\n"
    )
    new_year = int(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())
    assert config.schedules[0].timeline.upcoming(0, 5) == [new_year]


# -- time zones: abbreviations get places, not look-alike spellings ---------------------------


@pytest.mark.parametrize(
    ("name", "suggested"),
    [
        pytest.param("CEST", "'Europe/Berlin'", id="CEST suggests Europe/Berlin"),
        pytest.param("cest", "'Europe/Berlin'", id="in any case"),
        pytest.param("PST", "'America/Los_Angeles'", id="PST suggests Los Angeles"),
        pytest.param("PDT", "'America/Los_Angeles'", id="PDT too"),
        pytest.param("IST", "'Asia/Kolkata', 'Europe/Dublin' or 'Asia/Jerusalem'", id="IST, all 3"),
        pytest.param("BST", "'Europe/London'", id="BST suggests London"),
        pytest.param("AEST", "'Australia/Sydney'", id="AEST suggests Sydney"),
        pytest.param("europe/berlin", "'Europe/Berlin'? (time zone names are case-sensitive)",
                     id="a name in the wrong case gets its right case"),
        pytest.param("Europe/Berln", "did you mean 'Europe/Berlin'?", id="a misspelling"),
    ],
)  # fmt: skip
def test_unknown_time_zones_get_a_place_to_write(name: str, suggested: str) -> None:
    [(line, message)] = problems_of(f"schedules:\n  a:\n    timezone: {name}\n    every: 1m\n"
                                    "    job: x\n")  # fmt: skip
    assert line == 3
    assert f"unknown time zone {name!r}" in message
    assert suggested in message
    assert "'EST'" not in message


def test_every_suggested_zone_exists_and_no_abbreviation_hides_a_real_zone() -> None:
    zones = zoneinfo.available_timezones()
    for abbreviation, (_, suggested) in ABBREVIATIONS.items():
        assert abbreviation == abbreviation.upper()
        assert abbreviation not in zones, f"{abbreviation} loads; a hint would never be asked"
        assert set(suggested) <= zones, abbreviation


def test_a_name_with_no_near_zone_gets_an_example() -> None:
    assert zone_hint("Mars/Olympus_Mons") == "use an IANA name such as Europe/Berlin"


# -- counted nouns --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 problems"), (1, "1 problem"), (2, "2 problems"), (-1, "-1 problems")],
)
def test_plural_says_one_in_the_singular_only(count: int, text: str) -> None:
    assert plural(count, "problem") == text


def test_plural_takes_an_irregular_form() -> None:
    assert plural(3, "replica", "replicas") == "3 replicas"
    assert plural(2, "entry", "entries") == "2 entries"


# -- a missing file says where it was looked for ----------------------------------------------


def test_a_missing_relative_file_names_the_absolute_path_and_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config("schedules.yaml")
    [line] = caught.value.lines()
    cwd = Path.cwd()
    assert line == (
        f"schedules.yaml: file not found: looked for {cwd / 'schedules.yaml'} (schedules.yaml "
        f"in the working directory {cwd}); pass --config PATH or set CRONLEASE_CONFIG"
    )


def test_a_missing_absolute_file_says_when_its_folder_is_missing_too(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "schedules.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    [line] = caught.value.lines()
    assert f"looked for {path}; the folder {path.parent} does not exist either" in line
    assert "working directory" not in line, "an absolute path does not depend on it"
