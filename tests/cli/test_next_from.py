"""`cronlease next --from T` lists fires at or after T, for every trigger kind, as a user runs it.

The timelines answer "strictly after"; `next` turns that into "a fire at exactly T is included"
(its --help says so). Each case runs the real `python -m scheduler next ... --from ...`; the
processes start side by side once, and each test reads its own result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

# Every schedule here fires at T = 2026-01-07T12:00:00Z, each by its own kind of trigger; the
# last two fire at a DST instant that only their kind's rule produces.
SCHEDULES = """\
schedules:
  by-cron: {cron: "0 12 * * *", job: x}
  by-every: {every: 1h, job: x}
  by-at: {at: "2026-01-07T12:00:00Z", job: x}
  by-every-from-start: {every: 7m, start: "2026-01-07T12:00:00Z", job: x}
  wildcard-repeat: {cron: "*/30 * * * *", timezone: Europe/Berlin, job: x}
  fixed-gap: {cron: "30 2 * * *", timezone: Europe/Berlin, job: x}
"""
T = "2026-01-07T12:00:00Z"
KINDS = ["by-cron", "by-every", "by-at", "by-every-from-start"]

RUNS = {
    "at T": f"next -n 1 --json --from {T}",
    "at T with an offset": "next -n 1 --json --from 2026-01-07T13:00:00+01:00",
    "at T in Unix seconds": "next -n 1 --json --from 1767787200",
    "half a second before T": "next -n 1 --json --from 2026-01-07T11:59:59.5Z",
    "half a second after T": "next -n 1 --json --from 2026-01-07T12:00:00.5Z",
    "a second after T": "next -n 1 --json --from 2026-01-07T12:00:01Z",
    "at a second occurrence": "next wildcard-repeat -n 2 --json --from 2026-10-25T01:00:00Z",
    "at a collapsed gap fire": "next fixed-gap -n 1 --json --from 2026-03-29T01:00:00Z",
    "table after the one-shot": "next by-at --from 2026-01-07T12:00:01Z",
    "help": "next --help",
}


def cronlease(args: list[str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRONLEASE_")}
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    config = Path(tmp_path_factory.mktemp("next")) / "schedules.yaml"
    config.write_text(SCHEDULES, encoding="utf-8")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {
            name: pool.submit(cronlease, [*args.split(), "--config", str(config)])
            for name, args in RUNS.items()
        }
        return {name: future.result() for name, future in futures.items()}


def first_fires(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return {row["schedule"]: row["fire_time"] for row in rows}


@pytest.mark.parametrize(
    "run", ["at T", "at T with an offset", "at T in Unix seconds", "half a second before T"]
)
def test_a_fire_at_exactly_from_is_listed_for_every_trigger_kind(
    runs: dict[str, subprocess.CompletedProcess[str]], run: str
) -> None:
    fires = first_fires(runs[run])
    assert {kind: fires.get(kind) for kind in KINDS} == dict.fromkeys(KINDS, T)


@pytest.mark.parametrize("run", ["half a second after T", "a second after T"])
def test_a_fire_before_from_is_not_listed_for_any_trigger_kind(
    runs: dict[str, subprocess.CompletedProcess[str]], run: str
) -> None:
    fires = first_fires(runs[run])
    assert {kind: fires.get(kind) for kind in KINDS} == {
        "by-cron": "2026-01-08T12:00:00Z",
        "by-every": "2026-01-07T13:00:00Z",
        "by-at": None,  # a one-shot has nothing left; --json prints no line for it
        "by-every-from-start": "2026-01-07T12:07:00Z",
    }


def test_from_a_wildcard_jobs_second_occurrence_lists_it(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["at a second occurrence"]
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["local_time"] for line in result.stdout.splitlines()] == [
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
    ]


def test_from_a_fixed_time_jobs_collapsed_gap_fire_lists_it(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    fires = first_fires(runs["at a collapsed gap fire"])
    assert fires == {"fixed-gap": "2026-03-29T01:00:00Z"}


def test_the_table_says_when_a_one_shot_has_no_more_fires(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["table after the one-shot"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == ["by-at", "no", "more", "fires", "-"]


def test_help_says_a_fire_at_exactly_from_is_included_for_every_kind(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = runs["help"]
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "a fire at exactly TIME is included, for cron, every and at alike" in text
