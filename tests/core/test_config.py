"""schedules.yaml validation: every rejection with its line and a sentence a person understands.

The YAML snippets start on line 1, so the line numbers in the expectations can be counted by eye.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduler.core.config import load_config, parse_config
from scheduler.core.schedule import ConfigError, Problem
from scheduler.core.timeline import AtTimeline, CronTimeline, EveryTimeline


def problems_of(text: str) -> list[tuple[int, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "schedules.yaml")
    return [(p.line, p.message) for p in caught.value.problems]


# Each case: the YAML, then every expected problem as (line, fragments its message must hold).
REJECTIONS = [
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
    timezon: Europe/Berlin
""",
        [(5, ["unknown key 'timezon'", "did you mean 'timezone'?"])],
        id="a misspelt key is named with a did-you-mean",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
    colour: red
""",
        [(5, ["unknown key 'colour'", "known keys: cron, every, at, job"])],
        id="an unknown key with no close match lists the known keys",
    ),
    pytest.param(
        """\
schedule:
  report: {cron: "0 3 * * *", job: reports.nightly}
""",
        [
            (1, ["unknown key 'schedule'", "did you mean 'schedules'?"]),
            (1, ["missing schedules:"]),
        ],
        id="a misspelt top-level key is named and the missing schedules reported",
    ),
    pytest.param(
        """\
defaults:
  queu: reports
schedules:
  report: {cron: "0 3 * * *", job: reports.nightly}
""",
        [(2, ["defaults: unknown key 'queu'", "did you mean 'queue'?"])],
        id="a misspelt default is named with a did-you-mean",
    ),
    pytest.param(
        """\
defaults:
  every: 5m
schedules:
  report: {cron: "0 3 * * *", job: reports.nightly}
""",
        [(2, ["defaults cannot hold a trigger (every)"])],
        id="a trigger in defaults is refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    every: 15m
    job: reports.nightly
""",
        [(2, ["schedule 'report' needs exactly one of cron, every or at", "cron and every"])],
        id="two triggers are refused on the schedule's line",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    every: 15m
    at: 2026-12-01T09:00:00Z
    job: reports.nightly
""",
        [(2, ["needs exactly one of cron, every or at", "cron and every and at"])],
        id="three triggers are refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    job: reports.nightly
""",
        [(2, ["needs exactly one of cron, every or at; it has none"])],
        id="a schedule without a trigger is refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 0 31 2 *"
    job: reports.nightly
""",
        [(3, ["cron '0 0 31 2 *' never fires", "February 31st"])],
        id="a cron that never fires is refused on its line",
    ),
    pytest.param(
        """\
schedules:
  report:
    job: reports.nightly
    cron: "R R * * *"
""",
        [(4, ["R (random)", "every replica would draw differently", "use H instead"])],
        id="croniter's random R is refused on its line: replicas would disagree",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "61 * * * *"
    job: reports.nightly
""",
        [(3, ["cron '61 * * * *' is invalid"])],
        id="a cron with an out-of-range minute is refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "* * * *"
    job: reports.nightly
""",
        [(3, ["has 4 fields", "6 with seconds first"])],
        id="a cron with four fields is refused and the six-field order explained",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: 5
    job: reports.nightly
""",
        [(3, ["cron must be a quoted string"])],
        id="a cron that YAML read as a number is refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    timezone: Europe/Berln
    job: reports.nightly
""",
        [(4, ["unknown time zone 'Europe/Berln'", "did you mean 'Europe/Berlin'?"])],
        id="an unknown time zone is refused with a did-you-mean",
    ),
    pytest.param(
        """\
defaults:
  timezone: Mars/Olympus_Mons
schedules:
  report: {cron: "0 3 * * *", job: reports.nightly}
""",
        [(2, ["unknown time zone 'Mars/Olympus_Mons'"])],
        id="an unknown time zone in defaults is reported on the defaults line",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    timezone: Europe
    job: reports.nightly
""",
        [(4, ["unknown time zone 'Europe'"])],
        id="a zone folder instead of a zone is an unknown time zone, not a crash",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    timezone: 1
    job: reports.nightly
""",
        [(4, ["timezone must be an IANA name"])],
        id="a numeric time zone is refused",
    ),
    pytest.param(
        """\
schedules:
  warm:
    every: 15 minutes
    job: cache.warm
""",
        [(3, ["every: '15 minutes' is not a duration", "15m"])],
        id="a bad every duration is refused",
    ),
    pytest.param(
        """\
schedules:
  warm:
    every: 0s
    job: cache.warm
""",
        [(3, ["every must be at least 1s"])],
        id="every zero seconds is refused",
    ),
    pytest.param(
        """\
schedules:
  warm:
    every: 15m
    job: cache.warm
    catchup_window: 1h1h
    jitter: soon
""",
        [
            (5, ["catchup_window: '1h1h' repeats or reorders units"]),
            (6, ["jitter: 'soon' is not a duration"]),
        ],
        id="bad catchup_window and jitter durations are both refused",
    ),
    pytest.param(
        """\
schedules:
  nightly report!:
    cron: "0 3 * * *"
    job: reports.nightly
""",
        [(2, ["schedule name 'nightly report!' is not allowed", "letters, digits"])],
        id="a name with spaces and punctuation is refused",
    ),
    pytest.param(
        "schedules:\n  " + "x" * 129 + ":\n    every: 1m\n    job: x\n",
        [(2, ["is not allowed", "1 to 128"])],
        id="a name of 129 characters is refused",
    ),
    pytest.param(
        """\
schedules:
  yes:
    every: 1m
    job: x
""",
        [(2, ["schedule name True is a bool to YAML, not text", "quotes"])],
        id="an unquoted yes as a name is refused rather than renamed True",
    ),
    pytest.param(
        """\
- report
- warm
""",
        [(1, ["must be a mapping with a schedules: key", "not a list"])],
        id="a document that is a list is refused",
    ),
    pytest.param(
        "just some words\n",
        [(1, ["must be a mapping with a schedules: key", "not a str"])],
        id="a document that is a sentence is refused",
    ),
    pytest.param(
        "",
        [(1, ["the file is empty"])],
        id="an empty file is refused",
    ),
    pytest.param(
        """\
schedules:
  - report
""",
        [(1, ["schedules must be a mapping of name -> schedule"])],
        id="schedules as a list is refused",
    ),
    pytest.param(
        """\
defaults: UTC
schedules:
  report: {cron: "0 3 * * *", job: reports.nightly}
""",
        [(1, ["defaults must be a mapping"])],
        id="defaults as a scalar is refused",
    ),
    pytest.param(
        """\
schedules:
  report: "0 3 * * *"
""",
        [(2, ["schedule 'report' must be a mapping with a job and a trigger"])],
        id="a schedule that is a bare string is refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
    args: {1: pdf}
""",
        [(5, ["args must be JSON-serialisable", "keys must be strings"])],
        id="args with a number as key are refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
    args: {ratio: .nan}
""",
        [(5, ["args must be JSON-serialisable"])],
        id="args holding NaN are refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
    args: !!set {a, b}
""",
        [(5, ["args must be a mapping"])],
        id="args that are a YAML set are refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
    args: {recipients: !!set {a, b}}
""",
        [(5, ["args must be JSON-serialisable", "set"])],
        id="args holding a YAML set are refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
    args: [pdf]
    args: {}
""",
        [(6, ["duplicate key"])],
        id="args given twice are refused",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
  report:
    every: 1h
    job: reports.hourly
""",
        [(5, ["duplicate key 'report' (first on line 2)", "silently keep only the last"])],
        id="a duplicate schedule name is reported where PyYAML would silently keep the last",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
    job: reports.weekly
""",
        [(5, ["duplicate key 'job' (first on line 4)"])],
        id="a duplicate key inside a schedule is reported",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    job: reports: nightly
""",
        [(4, ["YAML syntax error", "mapping values are not allowed"])],
        id="a YAML syntax error is reported on its line",
    ),
    pytest.param(
        "schedules:\n  report:\n\tcron: '0 3 * * *'\n",
        [(3, ["YAML syntax error", "tab character", "spaces"])],
        id="a tab used for indentation is a syntax error on its line",
    ),
    pytest.param(
        """\
schedules:
  warm:
    every: 15m
    job: cache.warm
    jitter: 15m
""",
        [(5, ["jitter 15m must be shorter than the schedule's shortest interval (15m)"])],
        id="jitter equal to the every interval is refused",
    ),
    pytest.param(
        """\
schedules:
  beat:
    cron: "*/10 * * * * *"
    job: monitoring.beat
    jitter: 1m
""",
        [(5, ["jitter 1m must be shorter", "(10s)"])],
        id="jitter longer than a seconds-level cron interval is refused",
    ),
    pytest.param(
        """\
defaults:
  jitter: 30s
schedules:
  beat:
    every: 30s
    job: monitoring.beat
""",
        [(2, ["schedule 'beat': jitter 30s must be shorter"])],
        id="jitter from defaults is reported on the defaults line",
    ),
    pytest.param(
        """\
schedules:
  report:
    cron: "0 3 * * *"
    catchup: sometimes
    enabled: maybe
    queue: "reports queue"
    description: 42
""",
        [
            (2, ["needs a job"]),
            (4, ["catchup 'sometimes' is not one of all, latest, skip"]),
            (5, ["enabled must be true or false"]),
            (6, ["queue 'reports queue' is not allowed"]),
            (7, ["description must be text"]),
        ],
        id="bad policy, switch, queue and description and a missing job are all reported",
    ),
    pytest.param(
        """\
schedules:
  launch:
    at: next tuesday
    job: promo.start
  window:
    every: 1h
    job: x
    start: 2026-02-01T00:00:00Z
    end: 2026-01-01T00:00:00Z
  precise:
    at: 2026-12-01T09:00:00.5+01:00
    job: x
""",
        [
            (3, ["at: 'next tuesday' is not a date-time", "ISO 8601"]),
            (9, ["end 2026-01-01T00:00:00Z is before start 2026-02-01T00:00:00Z", "never fire"]),
            (11, ["fraction of a second"]),
        ],
        id="bad instants are refused",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REJECTIONS)
def test_each_rejection_names_its_line(text: str, expected: list[tuple[int, list[str]]]) -> None:
    found = problems_of(text)
    assert [line for line, _ in found] == [line for line, _ in expected], found
    for (_, message), (_, fragments) in zip(found, expected, strict=True):
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in {message!r}"


def test_several_problems_are_reported_at_once_in_line_order() -> None:
    text = """\
defaults:
  timezone: Europe/Berlin
schedules:
  report:
    cron: "0 0 31 2 *"
    job: reports.nightly
  warm:
    every: 15m
    job: cache.warm
    jittter: 5s
  launch:
    job: promo.start
  warm:
    every: 5m
    job: cache.warm
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "deploy/schedules.yaml")
    lines = caught.value.lines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        "deploy/schedules.yaml:5",
        "deploy/schedules.yaml:10",
        "deploy/schedules.yaml:11",
        "deploy/schedules.yaml:13",
    ]
    assert "never fires" in lines[0]
    assert "did you mean 'jitter'?" in lines[1]
    assert "it has none" in lines[2]
    assert "duplicate key 'warm' (first on line 7)" in lines[3]
    assert str(caught.value) == "\n".join(lines)


def test_a_problem_without_a_line_prints_the_file_alone() -> None:
    error = ConfigError("etc/schedules.yaml", [Problem(0, "file not found; pass --config PATH")])
    assert error.lines() == ["etc/schedules.yaml: file not found; pass --config PATH"]


def test_non_text_keys_anywhere_are_problems_not_crashes() -> None:
    for text in ["?\n", "1: x\nschedules:\n", "schedules:\n  report:\n    1: x\n    every: 1m\n"]:
        with pytest.raises(ConfigError):
            parse_config(text)


# -- valid files ---------------------------------------------------------------------------------

DESIGN_EXAMPLE = """\
defaults:                 # optional; any per-schedule field except the trigger
  timezone: UTC
  queue: default
schedules:
  nightly-report:         # the name: [A-Za-z0-9_.-], 1..128 characters, unique
    cron: "0 3 * * *"     # exactly one of cron / every / at
    timezone: Europe/Berlin
    job: reports.nightly  # required: what the worker runs
    args: {format: pdf}   # optional mapping, must be JSON-serialisable
    queue: reports        # optional, default "default"
  heartbeat:
    cron: "*/10 * * * * *"  # 6 fields: SECONDS first, then the usual five
    job: monitoring.beat
  cache-warm:
    every: 15m            # whole seconds, >= 1s; aligned to the Unix epoch (or to `start`)
    job: cache.warm
  launch:
    at: 2026-12-01T09:00:00+01:00   # one shot
    job: promo.start
"""


def test_the_design_example_is_valid() -> None:
    config = parse_config(DESIGN_EXAMPLE, "schedules.yaml")
    by_name = config.by_name()
    assert list(by_name) == ["nightly-report", "heartbeat", "cache-warm", "launch"]

    report = by_name["nightly-report"]
    assert report.kind == "cron"
    assert report.spec == "0 3 * * *"
    assert report.timezone == ZoneInfo("Europe/Berlin")
    assert report.job == "reports.nightly"
    assert dict(report.args) == {"format": "pdf"}
    assert report.args_json == '{"format":"pdf"}'
    assert report.queue == "reports"
    assert report.line == 5
    assert isinstance(report.timeline, CronTimeline)

    heartbeat = by_name["heartbeat"]
    assert heartbeat.timezone == ZoneInfo("UTC"), "inherited from defaults"
    assert heartbeat.queue == "default"
    assert heartbeat.args_json == "{}"
    assert (heartbeat.enabled, heartbeat.catchup, heartbeat.catchup_window_s) == (True, "all", 3600)
    assert heartbeat.jitter_s == 0

    assert isinstance(by_name["cache-warm"].timeline, EveryTimeline)
    launch = by_name["launch"]
    assert isinstance(launch.timeline, AtTimeline)
    assert launch.timeline.at_ts == 1796112000  # 2026-12-01T08:00:00Z


def test_schedules_are_immutable() -> None:
    report = parse_config(DESIGN_EXAMPLE).by_name()["nightly-report"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.job = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        report.args["format"] = "csv"  # type: ignore[index]


def test_defaults_apply_unless_a_schedule_overrides_them() -> None:
    config = parse_config(
        """\
defaults:
  catchup: skip
  catchup_window: 10m
  jitter: 5s
  enabled: false
schedules:
  a: {every: 1m, job: x}
  b: {every: 1m, job: x, catchup: latest, enabled: true, jitter: 0}
"""
    )
    a, b = config.schedules
    assert (a.catchup, a.catchup_window_s, a.jitter_s, a.enabled) == ("skip", 600, 5, False)
    assert (b.catchup, b.catchup_window_s, b.jitter_s, b.enabled) == ("latest", 600, 0, True)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("schedules:\n", id="an empty schedules mapping runs nothing"),
        pytest.param("schedules: {}\n", id="an explicit empty mapping runs nothing"),
    ],
)
def test_a_file_without_schedules_is_valid(text: str) -> None:
    assert parse_config(text).schedules == ()


def test_a_one_shot_in_the_past_is_valid_and_never_fires() -> None:
    config = parse_config("schedules:\n  old:\n    at: 2020-01-01T00:00:00Z\n    job: x\n")
    assert config.schedules[0].timeline.next_after(1767787200) is None


def test_jitter_just_below_the_interval_is_valid() -> None:
    config = parse_config("schedules:\n  w: {every: 15m, job: x, jitter: 14m59s}\n")
    assert config.schedules[0].jitter_s == 899


def test_quoted_names_that_look_like_other_types_are_fine() -> None:
    config = parse_config(
        'schedules:\n  "yes": {every: 1m, job: x}\n  "2024": {every: 1m, job: x}\n'
    )
    assert [s.name for s in config.schedules] == ["yes", "2024"]


def test_the_digest_identifies_the_text() -> None:
    first = parse_config(DESIGN_EXAMPLE)
    assert parse_config(DESIGN_EXAMPLE).digest == first.digest
    assert parse_config(DESIGN_EXAMPLE + "# a comment\n").digest != first.digest
    assert len(first.digest) == 16


# -- files ------------------------------------------------------------------------------------


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(DESIGN_EXAMPLE, encoding="utf-8")
    config = load_config(str(path))
    assert config.source == str(path)
    assert len(config.schedules) == 4


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        pytest.param(lambda p: None, "file not found", id="a missing file"),
        pytest.param(lambda p: p.mkdir(), "cannot read the file", id="a folder instead of a file"),
        pytest.param(
            lambda p: p.write_bytes(b"schedules:\n  caf\xe9: {every: 1m, job: x}\n"),
            "cannot read the file",
            id="a file that is not UTF-8",
        ),
    ],
)
def test_unreadable_files_are_config_errors(make: object, fragment: str, tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    make(path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    [line] = caught.value.lines()
    assert line.startswith(f"{path}: ")
    assert fragment in line


def test_the_repositorys_own_schedules_file_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "schedules.yaml"
    assert load_config(str(path)).schedules
