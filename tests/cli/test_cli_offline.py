"""`cronlease validate` and `cronlease next` as a user runs them: a real process, no Redis.

Every case runs `python -m scheduler ...` and checks the exit code, the output, and that no
traceback ever reaches the user. Starting the interpreter is most of the cost, so all the
processes of this module are declared in RUNS and started side by side once; each test then
reads its own result.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

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


RUNS: dict[str, Run] = {
    "validate repo": Run("validate --config {repo}"),
    "validate default path": Run("validate", in_folder=True),
    "validate from env": Run("validate", env={"CRONLEASE_CONFIG": "{valid}"}),
    "validate missing": Run("validate --config {folder}/nowhere.yaml"),
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


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "schedules.yaml").write_text(VALID, encoding="utf-8")
    (folder / "latin1.yaml").write_bytes("schedules:\n  café: {every: 1m}\n".encode("latin-1"))
    (folder / "invalid.yaml").write_text("schedules:\n  a:\n    every: soon\n    job: x\n")
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
        r": OK, \d+ schedules \(\d+ enabled\), config hash [0-9a-f]{16}$", result.stdout
    )


def test_validate_reads_schedules_yaml_in_the_current_folder_by_default(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["validate default path"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("schedules.yaml: OK, 3 schedules")


def test_validate_takes_the_config_from_the_environment(
    runs: dict[str, subprocess.CompletedProcess[str]], folder: Path
) -> None:
    result = runs["validate from env"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{folder / 'schedules.yaml'}: OK")


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
    assert summary == f"{path}: invalid ({len(expected)} problems)"


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


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_a_file_without_read_permission_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(VALID, encoding="utf-8")
    path.chmod(0)
    result = cronlease(["validate", "--config", str(path)])
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
