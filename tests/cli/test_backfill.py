"""`cronlease backfill` against a real redis-server and, for run ids and tokens, a real leader.

Ranges are in the past at fixed instants (no waiting); the one daemon test polls with deadlines.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
import redis

from scheduler.cli.main import main
from scheduler.core.config import parse_config
from scheduler.core.timefmt import parse_instant, rfc3339_local, rfc3339_utc
from scheduler.store.scripts import Scripts
from tests.daemons import KEYS, Daemon, leader_of, wait_for_leader, wait_for_runs
from tests.invariants import Run, check_invariants, parse_rfc3339, read_runs
from tests.redis_server import RedisServer, free_port, wait_until

SCHEDULES = """
schedules:
  beat:
    every: 10s
    job: test.beat
    args: {size: 3}
  nightly:
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    job: test.nightly
    queue: reports
  dormant:
    every: 1h
    job: test.dormant
    enabled: false
"""
OPERATOR = "operator-9"
T0 = "2024-01-01T00:00:00Z"
T1 = "2024-01-01T00:01:00Z"  # beat fires 7 times from T0 to T1, both included


def ts(text: str) -> int:
    return int(parse_instant(text, timezone.utc).timestamp())


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    return path


def ctl(*args: str, url: str, config: Path) -> tuple[int, str, str]:
    """One `cronlease backfill` call in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["backfill", *args, "--config", str(config), "--redis-url", url]
    argv += ["--replica-id", OPERATOR]
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def cronlease(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRONLEASE_")}
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=30,
        check=False,
    )


def backfilled(client: redis.Redis) -> list[Run]:
    return [run for run in read_runs(client) if run.trigger == "backfill"]


# -- without daemons --------------------------------------------------------------------------


def test_a_range_is_enqueued_inclusive_oldest_first_with_scheduled_ids_and_the_epoch(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    redis.set(KEYS.epoch, 41)  # a cluster whose leader is gone: runs carry the epoch
    redis.hset(KEYS.cursor, mapping={"beat": 12345, "nightly": 678})
    before = redis.time()[0]
    code, out, err = ctl("beat", "--from", T0, "--to", T1, url=redis_server.url, config=config_file)
    assert code == 0, err

    runs = backfilled(redis)
    fires = list(range(ts(T0), ts(T1) + 1, 10))
    assert [run.fire_ts for run in runs] == fires, "both ends included, oldest first"
    assert len(fires) == 7
    for run in runs:
        assert run.run_id == f"beat@{rfc3339_utc(run.fire_ts)}", "the scheduled run's id"
        assert run.fire_time == rfc3339_utc(run.fire_ts)
        assert (run.schedule, run.job, run.args, run.queue) == (
            "beat",
            "test.beat",
            {"size": 3},
            "default",
        )
        assert (run.stream, run.trigger, run.token, run.replica) == (
            KEYS.queue("default"),
            "backfill",
            41,
            OPERATOR,
        )
        assert int(before) <= parse_rfc3339(run.enqueued_at) <= redis.time()[0] + 1
        assert set(run.fields) == {
            "run_id",
            "schedule",
            "job",
            "args",
            "queue",
            "fire_time",
            "fire_ts",
            "enqueued_at",
            "trigger",
            "token",
            "replica",
        }
    assert out == (
        f"enqueued 7 backfill runs of beat ({T0} .. {T1}) into {KEYS.queue('default')} with "
        f"token 41: beat@{T0} .. beat@{T1}\n"
    )
    assert redis.hgetall(KEYS.cursor) == {"beat": "12345", "nightly": "678"}, "cursor untouched"
    assert redis.get(KEYS.epoch) == "41" and redis.get(KEYS.leader) is None

    # A range starting between fires begins at the next one; a lone instant on a fire is one run.
    between = ("--from", "2024-01-01T00:00:05Z", "--to", "1704067215")  # Unix seconds too
    code, out, err = ctl("beat", *between, url=redis_server.url, config=config_file)
    assert code == 0, err
    assert backfilled(redis)[7:][0].fire_ts == ts(T0) + 10 and len(backfilled(redis)) == 8
    code, _, err = ctl("beat", "--from", T1, "--to", T1, url=redis_server.url, config=config_file)
    assert code == 0, err
    assert backfilled(redis)[-1].fire_ts == ts(T1) and len(backfilled(redis)) == 9


def test_a_cron_schedule_in_its_zone_follows_dst_and_goes_to_its_queue_with_the_leader_token(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    redis.set(KEYS.epoch, 8)
    redis.set(KEYS.leader, "7:somebody", px=10_000)  # a live lease wins over the epoch
    span = ("--from", "2024-03-29T00:00:00Z", "--to", "2024-04-01T23:59:59Z")
    code, _, err = ctl("nightly", *span, url=redis_server.url, config=config_file)
    assert code == 0, err
    runs = backfilled(redis)
    # 02:30 Berlin; on 31 March 02:30 does not exist and runs at 03:00 CEST (DESIGN "Time").
    assert [run.fire_time for run in runs] == [
        "2024-03-29T01:30:00Z",
        "2024-03-30T01:30:00Z",
        "2024-03-31T01:00:00Z",
        "2024-04-01T00:30:00Z",
    ]
    schedule = parse_config(SCHEDULES).by_name()["nightly"]
    assert [r.fire_ts for r in runs] == schedule.timeline.upcoming(ts(span[1]) - 1, 4)
    assert {(r.stream, r.queue, r.token) for r in runs} == {(KEYS.queue("reports"), "reports", 7)}
    assert redis.hlen(KEYS.cursor) == 0


def test_a_dry_run_lists_the_runs_and_writes_nothing(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    redis.set(KEYS.epoch, 3)
    url = redis_server.url
    code, out, err = ctl("beat", "--from", T0, "--to", T1, "--dry-run", url=url, config=config_file)
    assert code == 0, err
    lines = out.splitlines()
    fires = list(range(ts(T0), ts(T1) + 1, 10))
    assert lines[:-1] == [
        f"beat@{rfc3339_utc(f)}  {rfc3339_local(f, timezone.utc)} UTC" for f in fires
    ]
    assert lines[-1] == (
        f"dry run: would enqueue 7 backfill runs of beat ({T0} .. {T1}) into "
        f"{KEYS.queue('default')} with token 3; nothing was written"
    )
    code, out, err = ctl(
        "beat", "--from", T0, "--to", T1, "--dry-run", "--json", url=url, config=config_file
    )
    assert code == 0, err
    rows: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    assert [row["run_id"] for row in rows] == [f"beat@{rfc3339_utc(f)}" for f in fires]
    assert rows[0] == {
        "schedule": "beat",
        "run_id": f"beat@{T0}",
        "fire_time": T0,
        "local_time": "2024-01-01T00:00:00+00:00",
        "fire_ts": ts(T0),
        "trigger": "backfill",
        "token": "3",
    }
    assert redis.keys("*") == [KEYS.epoch], "nothing written"


def test_more_than_max_is_refused_with_a_sentence_and_nothing_written(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    url = redis_server.url
    code, out, err = ctl(
        "beat", "--from", T0, "--to", T1, "--max", "6", url=url, config=config_file
    )
    assert (code, out) == (2, "")
    assert err == (
        f"cronlease backfill: beat fires more than 6 times from {T0} to {T1}; nothing was "
        "enqueued. Narrow the range, or raise --max if you mean it\n"
    )
    # The default is 1,000: a day of 10 s fires (8,640) is refused without being enumerated.
    day = ("--from", T0, "--to", "2024-01-02T00:00:00Z")
    code, _, err = ctl("beat", *day, url=url, config=config_file)
    assert code == 2 and "more than 1000 times" in err
    assert redis.dbsize() == 0
    assert ctl("beat", "--from", T0, "--to", T1, "--max", "7", url=url, config=config_file)[0] == 0
    assert len(backfilled(redis)) == 7


def test_each_chunk_of_500_is_one_script_call(
    redis_server: RedisServer,
    redis: redis.Redis,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    original = Scripts.backfill

    def spy(self: Scripts, stream: str, fields: Any, fire_ts: Any) -> Any:
        calls.append(len(fire_ts))
        return original(self, stream, fields, fire_ts)

    monkeypatch.setattr(Scripts, "backfill", spy)
    to = rfc3339_utc(ts(T0) + 10 * 1199)  # 1,200 fires
    code, out, err = ctl(
        "beat", "--from", T0, "--to", to, "--max", "5000", url=redis_server.url, config=config_file
    )
    assert code == 0, err
    assert calls == [500, 500, 200]
    runs = backfilled(redis)
    assert [r.fire_ts for r in runs] == list(range(ts(T0), ts(to) + 1, 10))
    assert "enqueued 1200 backfill runs" in out


BAD_INPUT = [
    (["beet", "--from", T0, "--to", T1], "unknown schedule 'beet' in {config}; did you mean"),
    (["beat", "--from", "yesterday", "--to", T1], "--from: 'yesterday' is not a date-time"),
    (["beat", "--from", T0, "--to", "2024-13-01"], "--to: '2024-13-01' is not a date-time"),
    (["beat", "--from", T1, "--to", T0], f"--from {T1} is after --to {T0}; give the older"),
    (["beat", "--from", T0, "--to", T1, "--max", "0"], "--max must be at least 1, not 0"),
    (["beat", "--from", "{past}", "--to", "{future}"], "includes fires after Redis's clock"),
]


@pytest.mark.parametrize(
    ("args", "message"),
    BAD_INPUT,
    ids=["an unknown name", "a bad --from", "a bad --to", "from after to", "--max 0", "future"],
)
def test_bad_input_exits_2_with_a_sentence_and_writes_nothing(
    redis_server: RedisServer,
    redis: redis.Redis,
    config_file: Path,
    args: list[str],
    message: str,
) -> None:
    now = int(redis.time()[0])
    times = {"past": rfc3339_utc(now - 30), "future": rfc3339_utc(now + 3600)}
    argv = [arg.format(**times) for arg in args]
    result = cronlease(
        "backfill", *argv, "--config", str(config_file), "--redis-url", redis_server.url
    )
    assert result.returncode == 2, result
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("cronlease backfill: ") and message.format(config=config_file) in line
    assert redis.dbsize() == 0


def test_unreachable_redis_exits_1_and_an_empty_range_or_disabled_schedule_says_so(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    argv = ["backfill", "beat", "--from", T0, "--to", T1, "--config", str(config_file)]
    result = cronlease(*argv, "--redis-url", url)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("cronlease backfill: cannot reach Redis")

    gap = ("--from", "2024-01-01T00:00:01Z", "--to", "2024-01-01T00:00:09Z")
    code, out, _ = ctl("beat", *gap, url=redis_server.url, config=config_file)
    assert code == 0 and "has no fire in" in out and "nothing to backfill" in out
    hours = ("--from", T0, "--to", "2024-01-01T02:00:00Z")
    code, out, _ = ctl("dormant", *hours, url=redis_server.url, config=config_file)
    assert code == 0 and "note: 'dormant' is disabled" in out
    assert [r.fire_ts for r in backfilled(redis)] == [ts(T0), ts(T0) + 3600, ts(T0) + 7200]


# -- against a real leader --------------------------------------------------------------------


def test_run_ids_equal_what_a_real_leader_enqueued_and_carry_its_token(
    redis_server: RedisServer, redis: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "schedules.yaml"
    config.write_text("schedules:\n  tick:\n    every: 1s\n    job: test.tick\n")
    url = redis_server.url
    daemon = Daemon("leader-1", config, url, tmp_path)
    try:
        wait_for_leader(redis)
        holder = leader_of(redis)
        assert holder is not None
        wait_for_runs(redis, 4, timeout_s=10)
        scheduled = [r for r in read_runs(redis) if r.trigger in ("scheduled", "catchup")]
        first, last = scheduled[0].fire_ts, scheduled[3].fire_ts
        cursor_before = int(redis.hget(KEYS.cursor, "tick") or 0)

        code, _, err = ctl(
            "tick", "--from", str(first), "--to", rfc3339_utc(last), url=url, config=config
        )
        assert code == 0, err
        runs = backfilled(redis)
        by_fire = {r.fire_ts: r.run_id for r in read_runs(redis) if r.trigger != "backfill"}
        assert [r.fire_ts for r in runs] == list(range(first, last + 1))
        assert [r.run_id for r in runs] == [by_fire[r.fire_ts] for r in runs]
        assert {r.token for r in runs} == {holder[0]}, "the current lease's token"
        assert (
            int(redis.hget(KEYS.cursor, "tick") or 0) >= cursor_before
        )  # only the leader moves it

        # The leader logs the announce hook's notice.
        span = f"{rfc3339_utc(first)} .. {rfc3339_utc(last)}"
        notice = f"backfill of tick ({span}): 4 runs enqueued by {OPERATOR}"
        wait_until(lambda: daemon.logged(notice), 5, 0.05)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        daemon.kill()
    # The leader's own runs are still exactly once, in order, with rising tokens.
    own = [r for r in read_runs(redis) if r.trigger != "backfill"]
    check_invariants(own).assert_ok()
