"""`cronlease validate` and `cronlease next` as a user runs them: a real process, no Redis.

Every case runs `python -m scheduler ...` and checks the exit code, the output, and that no
traceback ever reaches the user. Starting the interpreter is most of the cost, so all the
processes of this module are declared in RUNS and started side by side once; each test then
reads its own result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from scheduler.cli.main import build_parser
from scheduler.cli.settings import FLAGS, Settings, settings_from_args

REPO_SCHEDULES = Path(__file__).resolve().parents[2] / "schedules.yaml"

VALID = """\
schedules:
  nightly-report:
    cron: "0 3 * * *"
    timezone: Europe/Berlin
    job: reports.nightly
  cache-warm:
    every: 10m
    job: cache.warm
  old-launch:
    at: 2020-01-01T00:00:00Z
    job: promo.start
"""

# Each case: the file, then every expected problem as (line, a fragment of its message).
INVALID: dict[str, tuple[str, list[tuple[int, str]]]] = {
    "an unknown key is named with a did-you-mean": (
        "schedules:\n  a:\n    every: 1m\n    job: x\n    jiter: 5s\n",
        [(5, "did you mean 'jitter'?")],
    ),
    "two triggers are refused": (
        'schedules:\n  a:\n    cron: "0 3 * * *"\n    every: 1m\n    job: x\n',
        [(2, "needs exactly one of cron, every or at")],
    ),
    "no trigger is refused": (
        "schedules:\n  a:\n    job: x\n",
        [(2, "it has none")],
    ),
    "a cron that never fires is refused": (
        'schedules:\n  a:\n    cron: "0 0 31 2 *"\n    job: x\n',
        [(3, "never fires")],
    ),
    "an unknown time zone is refused": (
        'schedules:\n  a:\n    cron: "0 3 * * *"\n    timezone: Europe/Berln\n    job: x\n',
        [(4, "unknown time zone 'Europe/Berln'")],
    ),
    "a zone folder as time zone is refused, not a crash": (
        'schedules:\n  a:\n    cron: "0 3 * * *"\n    timezone: America\n    job: x\n',
        [(4, "unknown time zone 'America'")],
    ),
    "a bad duration is refused": (
        "schedules:\n  a:\n    every: soon\n    job: x\n",
        [(3, "not a duration")],
    ),
    "a bad name is refused": (
        "schedules:\n  a b:\n    every: 1m\n    job: x\n",
        [(2, "schedule name 'a b' is not allowed")],
    ),
    "a list document is refused": ("- a\n- b\n", [(1, "must be a mapping")]),
    "args that JSON cannot hold are refused": (
        "schedules:\n  a:\n    every: 1m\n    job: x\n    args: {1: 2}\n",
        [(5, "JSON-serialisable")],
    ),
    "a duplicate schedule name is refused": (
        "schedules:\n  a:\n    every: 1m\n    job: x\n  a:\n    every: 2m\n    job: y\n",
        [(5, "duplicate key 'a' (first on line 2)")],
    ),
    "a YAML syntax error is refused": (
        "schedules:\n  a:\n    every: 1m\n    job: x: y\n",
        [(4, "YAML syntax error")],
    ),
    "jitter as long as the interval is refused": (
        "schedules:\n  a:\n    every: 1m\n    job: x\n    jitter: 1m\n",
        [(5, "must be shorter than the schedule's shortest interval")],
    ),
    "a top-level key YAML reads as null is refused, not a crash": (
        "?\n",
        [(1, "unknown key None"), (1, "missing schedules:")],
    ),
    "a time zone abbreviation gets a place's name, not a look-alike": (
        'schedules:\n  a:\n    cron: "0 3 * * *"\n    timezone: CEST\n    job: x\n',
        [(4, "e.g. 'Europe/Berlin' or 'Europe/Paris'")],
    ),
    "a start after the end is refused: the schedule could never fire": (
        "schedules:\n  a:\n    every: 1h\n    start: 2031-02-01T00:00:00Z\n"
        "    end: 2031-01-01T00:00:00Z\n    job: x\n",
        [(5, "is before start 2031-02-01T00:00:00Z, so it could never fire")],
    ),
    "three problems are reported at once": (
        "schedules:\n  a:\n    every: 1m\n    job: x\n    jiter: 5s\n"
        "  b:\n    job: y\n  c:\n    every: 1 minute\n    job: z\n",
        [(5, "did you mean 'jitter'?"), (6, "it has none"), (9, "not a duration")],
    ),
}


@dataclass(frozen=True)
class Run:
    """One invocation, arguments split on spaces; {valid}, {repo}, {folder} are filled in."""

    args: str
    env: Mapping[str, str] = field(default_factory=dict)
    in_folder: bool = False  # run inside {folder}, which holds a valid schedules.yaml


ONE = "schedules:\n  only:\n    every: 1m\n    job: x\n"
ENDED = "schedules:\n  promo:\n    every: 1h\n    end: 2021-01-01T00:00:00Z\n    job: x\n"
# A daemon's environment, every value bad: commands that do not take these flags must not care.
BAD_DAEMON_ENV = {
    "CRONLEASE_LEASE_TTL": "nope",
    "CRONLEASE_LOG_FORMAT": "xml",
    "CRONLEASE_METRICS_PORT": "http",
    "CRONLEASE_REDIS_URL": "not a url",
}

RUNS: dict[str, Run] = {
    "validate repo": Run("validate --config {repo}"),
    "validate default path": Run("validate", in_folder=True),
    "validate from env": Run("validate", env={"CRONLEASE_CONFIG": "{valid}"}),
    "validate empty env is unset": Run("validate", env={"CRONLEASE_CONFIG": ""}, in_folder=True),
    "validate flag wins over env": Run(
        "validate --config {valid}", env={"CRONLEASE_CONFIG": "{folder}/nowhere.yaml"}
    ),
    "validate ignores daemon env": Run("validate --config {valid}", env=BAD_DAEMON_ENV),
    "next ignores daemon env": Run("next --config {valid} -n 1 --json", env=BAD_DAEMON_ENV),
    "validate one": Run("validate --config {folder}/one.yaml"),
    "validate ended": Run("validate --config {folder}/ended.yaml"),
    "validate unterminated quote": Run("validate --config {folder}/unterminated.yaml"),
    "validate missing": Run("validate --config {folder}/nowhere.yaml"),
    "validate missing relative": Run("validate --config nowhere.yaml", in_folder=True),
    "validate folder": Run("validate --config {folder}"),
    "validate not utf-8": Run("validate --config {folder}/latin1.yaml"),
    "next json": Run("next --config {valid} -n 2 --from 2026-10-24T12:00:00Z --json"),
    "next json repo": Run("next --config {repo} -n 3 --from 2026-03-29T00:00:00Z --json"),
    "next one from unix seconds": Run(
        "next nightly-report --config {valid} -n 1 --from 1774742400 --json"
    ),
    "next from exactly a fire": Run(
        "next nightly-report --config {valid} -n 1 --json --from 2026-03-30T03:00:00+02:00"
    ),
    "next table": Run("next --config {valid} -n 1 --from 2026-01-07T12:00Z"),
    "next bad from": Run("next --config {valid} --from yesterday"),
    "next february 30": Run("next --config {valid} --from 2026-02-30T00:00:00Z"),
    "next unknown name": Run("next nightly-reprot --config {valid}"),
    "next zero": Run("next --config {valid} -n 0"),
    "next missing file": Run("next --config {folder}/nowhere.yaml"),
    "next invalid file": Run("next --config {folder}/invalid.yaml"),
    "bad flag": Run("next --frmo 2026-01-01"),
    "validate help": Run("validate --help"),
    "next help": Run("next --help"),
    "run help": Run("run --help"),
    "status help": Run("status --help"),
    "status bad env": Run("status --config {valid}", env={"CRONLEASE_LEASE_TTL": "nope"}),
    "status bad choice env": Run("status --config {valid}", env={"CRONLEASE_LOG_FORMAT": "xml"}),
    "status flag wins over bad env": Run(
        "status --config {valid} --lease-ttl 5s", env={"CRONLEASE_LEASE_TTL": "nope"}
    ),
    "run bad flag value": Run("run --config {valid} --lease-ttl nope"),
} | {
    f"validate: {case}": Run(f"validate --config {{folder}}/invalid-{number}.yaml")
    for number, case in enumerate(INVALID)
}


def cronlease(
    args: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRONLEASE_")}
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, **(env or {})},
        timeout=60,
    )


def unterminated_example() -> tuple[str, int, int]:
    """The repository's example with the closing quote of the heartbeat's cron removed; the line
    of that quote, and the line of the next quote, where YAML notices."""
    lines = REPO_SCHEDULES.read_text(encoding="utf-8").splitlines(keepends=True)
    opened = next(i for i, line in enumerate(lines) if 'cron: "*/10 * * * * *"' in line)
    lines[opened] = lines[opened].replace('"*/10 * * * * *"', '"*/10 * * * * *')
    closed = next(i for i in range(opened + 1, len(lines)) if '"' in lines[i])
    return "".join(lines), opened + 1, closed + 1


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "schedules.yaml").write_text(VALID, encoding="utf-8")
    (folder / "latin1.yaml").write_bytes("schedules:\n  café: {every: 1m}\n".encode("latin-1"))
    (folder / "invalid.yaml").write_text("schedules:\n  a:\n    every: soon\n    job: x\n")
    (folder / "one.yaml").write_text(ONE, encoding="utf-8")
    (folder / "ended.yaml").write_text(ENDED, encoding="utf-8")
    text, _, _ = unterminated_example()
    (folder / "unterminated.yaml").write_text(text, encoding="utf-8")
    for number, (text, _) in enumerate(INVALID.values()):
        (folder / f"invalid-{number}.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def runs(folder: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    names = {"valid": str(folder / "schedules.yaml"), "repo": str(REPO_SCHEDULES)}
    names["folder"] = str(folder)

    def start(run: Run) -> subprocess.CompletedProcess[str]:
        args = [arg.format(**names) for arg in run.args.split()]
        env = {key: value.format(**names) for key, value in run.env.items()}
        return cronlease(args, cwd=folder if run.in_folder else None, env=env)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(start, run) for name, run in RUNS.items()}
        return {name: future.result() for name, future in futures.items()}


def test_no_run_ever_shows_a_traceback(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    shown = [name for name, r in runs.items() if "Traceback" in r.stdout + r.stderr]
    assert shown == []


# -- validate ---------------------------------------------------------------------------------


def test_the_repositorys_schedules_file_validates(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["validate repo"]
    assert result.returncode == 0, result.stderr
    assert re.search(
        r": OK, \d+ schedules \(\d+ enabled\), config hash [0-9a-f]{16}$",
        result.stdout.splitlines()[0],
    )
    # Then where each queue's runs go.
    assert "  queue default: stream {cronlease}:queue:default (" in result.stdout
    # The example is what new users copy: a warning here means its `launch` date has passed,
    # so move it ahead (and README's copy with it).
    assert result.stderr == ""


def test_validate_reads_schedules_yaml_in_the_current_folder_by_default(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["validate default path"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("schedules.yaml: OK, 3 schedules")


def test_a_one_shot_in_the_past_is_a_warning_and_validate_still_exits_0(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["validate default path"]
    assert result.returncode == 0
    [warning] = result.stderr.splitlines()
    assert warning.startswith(
        "schedules.yaml:10: warning: schedule 'old-launch': at 2020-01-01T00:00:00Z is in the past"
    )
    assert result.stdout.startswith("schedules.yaml: OK, 3 schedules (3 enabled), 1 warning, ")


def test_an_end_in_the_past_is_a_warning(
    runs: dict[str, subprocess.CompletedProcess[str]], folder: Path
) -> None:
    result = runs["validate ended"]
    assert result.returncode == 0
    assert result.stderr.startswith(
        f"{folder / 'ended.yaml'}:4: warning: schedule 'promo': end 2021-01-01T00:00:00Z is in "
        "the past"
    )
    assert ", 1 schedule (1 enabled), 1 warning, config hash " in result.stdout


def test_one_schedule_is_counted_in_the_singular(
    runs: dict[str, subprocess.CompletedProcess[str]], folder: Path
) -> None:
    result = runs["validate one"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{folder / 'one.yaml'}: OK, 1 schedule (1 enabled), config")
    assert result.stderr == ""


def test_an_unterminated_quote_is_reported_where_it_opens_too(
    runs: dict[str, subprocess.CompletedProcess[str]], folder: Path
) -> None:
    result = runs["validate unterminated quote"]
    path = folder / "unterminated.yaml"
    _, opened, closed = unterminated_example()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:{closed}: YAML syntax error: did not find expected key",
        f"{path}:{opened}: note: while parsing a block mapping, which begins here",
        f"{path}:{opened}: note: a quoted value opens here and only closes on line {closed}; "
        "is its closing quote missing?",
        f"{path}: invalid (1 problem)",
    ]


def test_validate_takes_the_config_from_the_environment(
    runs: dict[str, subprocess.CompletedProcess[str]], folder: Path
) -> None:
    result = runs["validate from env"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{folder / 'schedules.yaml'}: OK")


def test_the_flag_wins_over_the_variable_and_an_empty_variable_is_unset(
    runs: dict[str, subprocess.CompletedProcess[str]], folder: Path
) -> None:
    flag_wins = runs["validate flag wins over env"]
    assert flag_wins.returncode == 0, flag_wins.stderr
    assert flag_wins.stdout.startswith(f"{folder / 'schedules.yaml'}: OK")
    empty = runs["validate empty env is unset"]
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.startswith("schedules.yaml: OK")


@pytest.mark.parametrize("case", list(INVALID))
def test_validate_reports_each_problem_as_file_line_message(
    runs: dict[str, subprocess.CompletedProcess[str]], folder: Path, case: str
) -> None:
    result = runs[f"validate: {case}"]
    path = folder / f"invalid-{list(INVALID).index(case)}.yaml"
    expected = INVALID[case][1]
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    problems, summary = lines[:-1], lines[-1]
    assert len(problems) == len(expected), result.stderr
    for line, (number, fragment) in zip(problems, expected, strict=True):
        assert line.startswith(f"{path}:{number}: "), line
        assert fragment in line
    counted = "1 problem" if len(expected) == 1 else f"{len(expected)} problems"
    assert summary == f"{path}: invalid ({counted})"


@pytest.mark.parametrize(
    ("run", "file", "fragment"),
    [
        pytest.param("validate missing", "nowhere.yaml", "file not found", id="a missing file"),
        pytest.param("validate folder", "", "cannot read the file", id="a folder"),
        pytest.param(
            "validate not utf-8", "latin1.yaml", "cannot read the file", id="a file not in UTF-8"
        ),
        pytest.param("next missing file", "nowhere.yaml", "file not found", id="next, no file"),
    ],
)
def test_unreadable_config_files_exit_2_with_a_sentence(
    runs: dict[str, subprocess.CompletedProcess[str]],
    folder: Path,
    run: str,
    file: str,
    fragment: str,
) -> None:
    result = runs[run]
    assert result.returncode == 2
    assert result.stderr.startswith(f"{folder / file if file else folder}: ")
    assert fragment in result.stderr


def test_a_missing_file_names_the_path_looked_at_and_the_working_directory(
    runs: dict[str, subprocess.CompletedProcess[str]], folder: Path
) -> None:
    relative = runs["validate missing relative"]
    cwd = folder.resolve()  # what the process's getcwd() says, symbolic links resolved
    assert relative.returncode == 2
    assert relative.stderr.startswith(
        f"nowhere.yaml: file not found: looked for {cwd / 'nowhere.yaml'} (nowhere.yaml in the "
        f"working directory {cwd}); "
    )
    absolute = runs["validate missing"]
    assert f"file not found: looked for {folder / 'nowhere.yaml'}; " in absolute.stderr


def test_a_file_without_read_permission_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(VALID, encoding="utf-8")
    path.chmod(0)
    args = ["validate", "--config", str(path)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Root reads anything, unless the process lacks the capabilities that let it.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
        drop = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
        result = subprocess.run(
            [*drop, sys.executable, "-m", "scheduler", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
    else:
        result = cronlease(args)
    assert result.returncode == 2
    assert "cannot read the file" in result.stderr
    assert "Traceback" not in result.stderr


# -- next --------------------------------------------------------------------------------------


def test_next_json_prints_one_object_per_line(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["next json"]
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [
        {
            "schedule": "nightly-report",
            "fire_time": "2026-10-25T02:00:00Z",
            "local_time": "2026-10-25T03:00:00+01:00",
        },
        {
            "schedule": "nightly-report",
            "fire_time": "2026-10-26T02:00:00Z",
            "local_time": "2026-10-26T03:00:00+01:00",
        },
        {
            "schedule": "cache-warm",
            "fire_time": "2026-10-24T12:00:00Z",
            "local_time": "2026-10-24T12:00:00+00:00",
        },
        {
            "schedule": "cache-warm",
            "fire_time": "2026-10-24T12:10:00Z",
            "local_time": "2026-10-24T12:10:00+00:00",
        },
    ]
    for row in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["fire_time"])
        utc = datetime.fromisoformat(row["fire_time"].replace("Z", "+00:00"))
        assert datetime.fromisoformat(row["local_time"]) == utc, "the same instant twice"


def test_next_json_for_the_repositorys_file_covers_every_schedule(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["next json repo"]
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows
    per_schedule: dict[str, list[str]] = {}
    for row in rows:
        assert set(row) == {"schedule", "fire_time", "local_time"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["fire_time"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", row["local_time"])
        per_schedule.setdefault(row["schedule"], []).append(row["fire_time"])
    assert all(1 <= len(fires) <= 3 for fires in per_schedule.values())
    assert all(fires == sorted(set(fires)) for fires in per_schedule.values())


def test_next_for_one_schedule_from_unix_seconds(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["next one from unix seconds"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "schedule": "nightly-report",
        "fire_time": "2026-03-29T01:00:00Z",
        "local_time": "2026-03-29T03:00:00+02:00",
    }


def test_next_from_an_offset_counts_a_fire_exactly_at_from(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["next from exactly a fire"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["local_time"] == "2026-03-30T03:00:00+02:00"


def test_next_prints_a_table_with_local_and_utc_times(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["next table"]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SCHEDULE", "LOCAL", "TIME", "UTC"]
    assert lines[1].split() == [
        "nightly-report",
        "2026-01-08T03:00:00+01:00",
        "Europe/Berlin",
        "2026-01-08T02:00:00Z",
    ]
    assert lines[2].split() == [
        "cache-warm",
        "2026-01-07T12:00:00+00:00",
        "UTC",
        "2026-01-07T12:00:00Z",
    ]
    assert lines[3].split() == ["old-launch", "no", "more", "fires", "-"]


@pytest.mark.parametrize(
    ("run", "fragment"),
    [
        pytest.param("next bad from", "--from: 'yesterday' is not a date-time", id="a bad --from"),
        pytest.param("next february 30", "--from:", id="a --from on February 30th"),
        pytest.param(
            "next unknown name",
            "unknown schedule 'nightly-reprot'",
            id="an unknown schedule name",
        ),
        pytest.param("next zero", "-n must be at least 1", id="zero fire times"),
    ],
)
def test_next_refuses_bad_input_with_exit_2(
    runs: dict[str, subprocess.CompletedProcess[str]], run: str, fragment: str
) -> None:
    result = runs[run]
    assert result.returncode == 2
    assert result.stdout == ""
    assert fragment in result.stderr


def test_an_unknown_schedule_name_gets_a_did_you_mean(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    assert "did you mean 'nightly-report'?" in runs["next unknown name"].stderr


def test_next_on_an_invalid_file_reports_its_problems(
    runs: dict[str, subprocess.CompletedProcess[str]], folder: Path
) -> None:
    result = runs["next invalid file"]
    assert result.returncode == 2
    assert result.stderr.startswith(f"{folder / 'invalid.yaml'}:3: ")


def test_a_bad_flag_exits_2_with_usage(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = runs["bad flag"]
    assert result.returncode == 2
    assert "usage:" in result.stderr


# -- flags and their variables ------------------------------------------------------------------


def options_in(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", help_text.split("options:", 1)[1]))


@pytest.mark.parametrize(
    ("run", "options"),
    [
        pytest.param("validate help", {"-h", "--help", "--config"}, id="validate"),
        pytest.param(
            "next help", {"-h", "--help", "--config", "-n", "--from", "--json"}, id="next"
        ),
    ],
)
def test_the_offline_commands_list_only_the_flags_they_use(
    runs: dict[str, subprocess.CompletedProcess[str]], run: str, options: set[str]
) -> None:
    result = runs[run]
    assert result.returncode == 0, result.stderr
    assert options_in(result.stdout) == options
    assert "[env CRONLEASE_CONFIG]" in " ".join(result.stdout.split())


@pytest.mark.parametrize("run", ["run help", "status help"])
def test_the_daemon_and_redis_commands_keep_every_flag_and_its_variable(
    runs: dict[str, subprocess.CompletedProcess[str]], run: str
) -> None:
    result = runs[run]
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for flag in FLAGS:
        assert f"{flag.option} " in text, flag.option
        assert f"[env {flag.env}]" in text, flag.env


@pytest.mark.parametrize("run", ["validate ignores daemon env", "next ignores daemon env"])
def test_the_offline_commands_ignore_variables_of_flags_they_do_not_take(
    runs: dict[str, subprocess.CompletedProcess[str]], run: str
) -> None:
    result = runs[run]
    assert result.returncode == 0, result.stderr
    assert result.stdout


@pytest.mark.parametrize(
    ("run", "message"),
    [
        pytest.param(
            "status bad env",
            "cronlease status: CRONLEASE_LEASE_TTL=nope: 'nope' is not a duration",
            id="a bad duration",
        ),
        pytest.param(
            "status bad choice env",
            "cronlease status: CRONLEASE_LOG_FORMAT=xml: 'xml' is not one of text, json",
            id="a value outside the choices, which argparse never checked for variables",
        ),
    ],
)
def test_a_bad_variable_is_named_as_the_variable(
    runs: dict[str, subprocess.CompletedProcess[str]], run: str, message: str
) -> None:
    result = runs[run]
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert "argument --" not in result.stderr, "nobody typed the flag"
    assert "fix or unset the variable" in result.stderr


def test_a_flag_wins_over_a_bad_variable(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["status flag wins over bad env"]
    assert result.returncode == 1, "past the settings; no Redis is running for this folder"
    assert "CRONLEASE_LEASE_TTL" not in result.stderr


def test_a_bad_flag_value_is_still_named_as_the_flag(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["run bad flag value"]
    assert result.returncode == 2
    assert "argument --lease-ttl: 'nope' is not a duration" in result.stderr


def test_the_flag_defaults_are_the_settings_defaults() -> None:
    # A command that does not take a flag gets the Settings default: the two must agree.
    args = build_parser().parse_args(["run"])
    from_flags = settings_from_args(args, {})
    assert from_flags == dataclasses.replace(Settings(), replica_id=from_flags.replica_id)
    offline = settings_from_args(build_parser().parse_args(["validate"]), {})
    assert offline == dataclasses.replace(Settings(), replica_id=offline.replica_id)


def test_the_environment_is_read_for_the_flags_a_command_takes() -> None:
    environ = {"CRONLEASE_LEASE_TTL": "1m", "CRONLEASE_LOG_LEVEL": "debug", "CRONLEASE_CONFIG": "x"}
    run = settings_from_args(build_parser().parse_args(["run"]), environ)
    assert (run.lease_ttl_s, run.log_level, run.config_path) == (60.0, "DEBUG", "x")
    validate = settings_from_args(build_parser().parse_args(["validate"]), environ)
    assert (validate.lease_ttl_s, validate.config_path) == (Settings().lease_ttl_s, "x")
    assert isinstance(build_parser(), argparse.ArgumentParser)
