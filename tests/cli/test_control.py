"""`cronlease status`, `trigger`, `pause` and `resume` against a real redis-server and, where it
matters, real `cronlease run` processes (leases of 1 s; every wait is a poll with a deadline).

Most calls run the CLI in-process (`main([...])`, output captured) so a call in the middle of a
failover is quick; the exit-code cases run `python -m scheduler` to prove no traceback leaks.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from scheduler.cli.main import main
from scheduler.core.config import parse_config
from scheduler.core.schedule import Config
from scheduler.core.timefmt import rfc3339_local, rfc3339_utc
from tests.daemons import KEYS, leader_of, replicas, wait_for_leader, wait_for_runs
from tests.invariants import Run, check_invariants, missing_between, parse_rfc3339, read_runs
from tests.redis_server import RedisServer, free_port, wait_until

SCHEDULES = """
schedules:
  beat:
    every: 1s
    job: test.beat
    args: {size: 3}
  cron-beat:
    cron: "* * * * * *"
    job: test.cron
    queue: other
    timezone: Europe/Berlin
"""
OPERATOR = "operator-7"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    return path


@pytest.fixture
def config() -> Config:
    return parse_config(SCHEDULES)


def ctl(command: str, *args: str, url: str, config: Path) -> tuple[int, str, str]:
    """One CLI call in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [command, *args, "--config", str(config), "--redis-url", url]
    argv += ["--lease-ttl", "1", "--replica-id", OPERATOR]
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def status_json(url: str, config: Path) -> dict[str, Any]:
    code, out, err = ctl("status", "--json", url=url, config=config)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1, "one JSON object on one line"
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def cronlease(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRONLEASE_")}
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean,
        timeout=30,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return int(seconds) + int(micros) / 1e6


def scheduled(client: redis.Redis, name: str) -> list[Run]:
    return [run for run in read_runs(client) if run.schedule == name and not run.is_manual]


def manual(client: redis.Redis) -> list[Run]:
    return [run for run in read_runs(client) if run.is_manual]


def cursor(client: redis.Redis, name: str) -> int | None:
    value = client.hget(KEYS.cursor, name)
    return None if value is None else int(value)


# -- status without daemons -------------------------------------------------------------------


def seed_without_leader(client: redis.Redis) -> float:
    """A cluster whose leader died: epoch 4, its leader-info, a stale and a live replica."""
    now = redis_now(client)
    now_ms = int(now * 1000)
    client.set(KEYS.epoch, 4)
    client.hset(
        KEYS.leader_info,
        mapping={"token": 4, "replica": "gone-1", "since": f"{now - 100:.3f}", "config_hash": "x"},
    )
    client.zadd(KEYS.replicas, {"gone-1": now_ms - 60_000, "live-2": now_ms - 100})
    info = {"config_hash": "x", "version": "0.1.0", "host": "h", "pid": 9, "started_at": 1.5}
    client.hset(
        KEYS.replica_info,
        mapping={
            "gone-1": json.dumps({**info, "role": "leader"}),
            "live-2": json.dumps({**info, "role": "follower"}),
        },
    )
    client.hset(KEYS.cursor, mapping={"beat": int(now) - 5, "retired": int(now) - 50})
    client.sadd(KEYS.paused, "cron-beat", "retired")
    client.xadd(KEYS.queue("default"), {"run_id": "x"})
    return now


def test_status_json_of_a_cluster_without_a_leader(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    now = seed_without_leader(redis)
    status = status_json(redis_server.url, config_file)

    assert status["leader"] is None
    assert status["epoch"] == 4
    previous = status["previous_leader"]
    assert (previous["replica"], previous["token"]) == ("gone-1", 4)
    assert previous["since_ts"] == pytest.approx(now - 100, abs=0.01)
    assert previous["since"] == rfc3339_utc(int(now - 100))
    assert now <= status["now_ts"] < now + 5
    replicas_seen = {r["id"]: r for r in status["replicas"]}
    assert replicas_seen["gone-1"]["stale"] and replicas_seen["gone-1"]["role"] == "ex-leader"
    assert not replicas_seen["live-2"]["stale"] and replicas_seen["live-2"]["role"] == "follower"
    assert replicas_seen["live-2"]["last_seen_ago_s"] < 5
    assert status["config"]["loaded"] and status["config"]["matches_leader"] is None

    schedules = {s["name"]: s for s in status["schedules"]}
    beat = schedules["beat"]
    assert beat["last_fire_ts"] == int(now) - 5
    assert beat["last_fire"] == rfc3339_utc(int(now) - 5)
    assert beat["next_fire_ts"] == int(status["now_ts"]) + 1  # next_after(max(cursor, now))
    assert beat["next_fire"] == rfc3339_utc(beat["next_fire_ts"])
    assert not beat["paused"] and beat["enabled"]
    cron_beat = schedules["cron-beat"]
    assert cron_beat["paused"] and cron_beat["last_fire"] is None
    berlin = ZoneInfo("Europe/Berlin")
    assert cron_beat["next_fire_local"] == rfc3339_local(cron_beat["next_fire_ts"], berlin)
    assert [(u["name"], u["paused"]) for u in status["unknown_schedules"]] == [("retired", True)]
    assert status["paused"] == ["cron-beat", "retired"]
    assert {q["name"]: q["length"] for q in status["queues"]} == {"default": 1, "other": 0}


def test_status_table_of_a_cluster_without_a_leader(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    seed_without_leader(redis)
    code, out, err = ctl("status", url=redis_server.url, config=config_file)
    assert code == 0, err
    assert "Leader    none: the lease is free (epoch 4)" in out
    assert "Previous  gone-1  fencing token 4" in out
    assert re.search(r"^gone-1\s+ex-leader\s+\S+ ago, STALE", out, re.M), out
    assert re.search(r"^live-2\s+follower\s+\d\.\ds ago\s", out, re.M), out
    assert re.search(r"^beat\s+every\s+1s\s+default\s+\S+Z \(\d+\.\ds ago\)", out, re.M), out
    assert re.search(r"^cron-beat\s+cron\s+.*\+0[12]:00 Europe/Berlin\s+yes\s+yes$", out, re.M), out
    assert "Unknown to this config" in out and re.search(r"^retired\s.*yes$", out, re.M), out
    # LENGTH, PENDING (no consumer group reads it yet), the age of its oldest entry.
    assert re.search(
        r"^default\s+stream \{cronlease\}:queue:default\s+1\s+-\s+\S+s old$", out, re.M
    ), out


def test_status_says_why_the_config_did_not_load_and_shows_what_redis_knows(
    redis_server: RedisServer, redis: redis.Redis, tmp_path: Path
) -> None:
    seed_without_leader(redis)
    broken = tmp_path / "broken.yaml"
    broken.write_text("schedules:\n  beat:\n    every: 1s\n    job: x\n    jbo: y\n")
    status = status_json(redis_server.url, broken)
    assert not status["config"]["loaded"]
    assert "unknown key 'jbo'" in status["config"]["error"]
    assert status["schedules"] == []
    assert [u["name"] for u in status["unknown_schedules"]] == ["beat", "cron-beat", "retired"]
    code, out, _ = ctl("status", url=redis_server.url, config=broken)
    assert code == 0
    assert f"Config    {broken} does not load:" in out and "retired" in out


# -- trigger, pause, resume without daemons ---------------------------------------------------


def test_trigger_writes_one_manual_run_and_leaves_the_cursor_alone(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    redis.hset(KEYS.cursor, "beat", 12345)
    before = redis_now(redis)
    code, out, err = ctl("trigger", "beat", url=redis_server.url, config=config_file)
    after = redis_now(redis)
    assert code == 0, err

    runs = read_runs(redis)
    assert len(runs) == 1
    run = runs[0]
    assert run.stream == KEYS.queue("default")
    assert run.run_id in out and run.entry_id in out
    assert re.fullmatch(rf"beat@{re.escape(run.fire_time)}#manual-[0-9a-f]{{8,}}", run.run_id)
    assert (run.schedule, run.job, run.args, run.queue) == (
        "beat",
        "test.beat",
        {"size": 3},
        "default",
    )
    assert int(before) <= run.fire_ts <= after and run.fire_time == rfc3339_utc(run.fire_ts)
    assert run.fire_ts <= parse_rfc3339(run.enqueued_at) <= after
    assert re.fullmatch(r"\S+T\S+\.\d{3}Z", run.enqueued_at)
    assert (run.trigger, run.token, run.replica) == ("manual", 0, OPERATOR)  # no leader, epoch 0
    assert cursor(redis, "beat") == 12345
    assert redis.hlen(KEYS.cursor) == 1

    # With a leader, the run carries its fencing token; the cursor still does not move.
    redis.set(KEYS.leader, "7:somebody", px=10_000)
    code, _, err = ctl("trigger", "cron-beat", url=redis_server.url, config=config_file)
    assert code == 0, err
    second = manual(redis)[-1]
    assert (second.schedule, second.queue, second.token) == ("cron-beat", "other", 7)
    assert second.stream == KEYS.queue("other")
    assert redis.hgetall(KEYS.cursor) == {"beat": "12345"}
    check_invariants(read_runs(redis), ignore_manual=False).assert_ok()


def test_pause_and_resume_are_idempotent_and_say_what_changed(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    url = redis_server.url
    assert ctl("pause", "beat", url=url, config=config_file)[:2] == (
        0,
        "paused beat: the leader skips its fires until resume (not replayed later)\n",
    )
    assert ctl("pause", "beat", url=url, config=config_file)[:2] == (0, "beat was already paused\n")
    assert redis.smembers(KEYS.paused) == {"beat"}
    code, out, _ = ctl("resume", "beat", url=url, config=config_file)
    assert code == 0 and out.startswith("resumed beat")
    assert ctl("resume", "beat", url=url, config=config_file)[:2] == (0, "beat was not paused\n")
    assert redis.exists(KEYS.paused) == 0


@pytest.mark.parametrize("command", ["trigger", "pause", "resume"])
def test_an_unknown_name_exits_2_naming_the_file_with_a_suggestion(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, command: str
) -> None:
    result = cronlease(
        command, "beet", "--config", str(config_file), "--redis-url", redis_server.url
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"cronlease {command}: unknown schedule 'beet' in {config_file}; did you mean 'beat'?"
    )
    assert redis.dbsize() == 0


def test_unreachable_redis_exits_1_with_one_line_and_no_password(config_file: Path) -> None:
    url = f"redis://ops:hunter2@127.0.0.1:{free_port()}/0"
    for args in (["status"], ["status", "--json"], ["trigger", "beat"], ["pause", "beat"]):
        result = cronlease(*args, "--config", str(config_file), "--redis-url", url)
        assert result.returncode == 1, result
        assert result.stdout == ""
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith(f"cronlease {args[0]}: cannot reach Redis")
        assert "hunter2" not in line and "ops:***@127.0.0.1" in line


def test_without_a_url_they_never_start_an_embedded_redis(config_file: Path) -> None:
    result = cronlease("status", "--config", str(config_file))
    assert result.returncode == 1
    assert "no embedded Redis is running" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (config_file.parent / ".cronlease").exists()


# -- with daemons -----------------------------------------------------------------------------


def test_status_with_a_running_leader_and_a_follower(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, tmp_path: Path
) -> None:
    with replicas(2, config_file, redis_server.url, tmp_path):
        leader = wait_for_leader(redis)
        follower = "r2" if leader == "r1" else "r1"
        holder = leader_of(redis)
        assert holder is not None

        def settled() -> bool:
            status = status_json(redis_server.url, config_file)
            roles = {r["id"]: r["role"] for r in status["replicas"]}
            return roles == {leader: "leader", follower: "follower"} and bool(
                status["leader"] and status["leader"]["since"]
            )

        wait_until(settled, 10, 0.05)
        status = status_json(redis_server.url, config_file)
        lead = status["leader"]
        assert (lead["replica"], lead["token"]) == (leader, holder[0])
        assert 0 < lead["lease_left_ms"] <= 1000
        assert 0 <= lead["for_s"] < 15
        assert status["config"]["matches_leader"] is True and status["config_drift"] == []
        assert all(not r["stale"] for r in status["replicas"])

        code, out, err = ctl("status", url=redis_server.url, config=config_file)
        assert code == 0, err
        assert f"Leader    {leader}  fencing token {holder[0]}" in out
        assert re.search(rf"^{follower}\s+follower\s", out, re.M), out
        assert re.search(r"^Lease     0\.\d\ds left$", out, re.M), out


def test_pause_stops_one_schedule_while_others_run_and_resume_does_not_replay(
    redis_server: RedisServer,
    redis: redis.Redis,
    config_file: Path,
    config: Config,
    tmp_path: Path,
) -> None:
    url = redis_server.url
    with replicas(1, config_file, url, tmp_path):
        wait_for_leader(redis)
        wait_for_runs(redis, 2, timeout_s=10)
        assert ctl("pause", "beat", url=url, config=config_file)[0] == 0
        paused_at = redis_now(redis)
        beats = len(scheduled(redis, "beat"))
        others = redis.xlen(KEYS.queue("other"))
        # The others keep running, and beat's cursor moves on: its fires are skipped, not held.
        wait_for_runs(redis, others + 3, timeout_s=10, queue="other")
        wait_until(lambda: (cursor(redis, "beat") or 0) >= paused_at + 2, 10, 0.02)
        assert len(scheduled(redis, "beat")) == beats
        assert status_json(url, config_file)["schedules"][0]["paused"] is True

        assert ctl("resume", "beat", url=url, config=config_file)[0] == 0
        resumed_at = redis_now(redis)
        wait_until(lambda: len(scheduled(redis, "beat")) >= beats + 2, 10, 0.02)

    runs = read_runs(redis)
    beat_fires = [run.fire_ts for run in runs if run.schedule == "beat"]
    assert not [f for f in beat_fires if paused_at < f < int(resumed_at) - 1], beat_fires
    timelines = {s.name: s.timeline for s in config.schedules}
    check_invariants(runs, timelines={"cron-beat": timelines["cron-beat"]}).assert_ok()
    gap = missing_between(runs, timelines)
    assert list(gap) == ["beat"]
    assert all(paused_at - 1 < f < resumed_at + 1 for f in gap["beat"]), (gap, paused_at)


def test_pause_resume_trigger_and_status_across_a_failover(
    redis_server: RedisServer,
    redis: redis.Redis,
    config_file: Path,
    config: Config,
    tmp_path: Path,
) -> None:
    url = redis_server.url
    with replicas(2, config_file, url, tmp_path) as daemons:
        old = wait_for_leader(redis)
        holder = leader_of(redis)
        assert holder is not None
        old_token = holder[0]
        wait_for_runs(redis, 2, timeout_s=10)
        assert ctl("pause", "beat", url=url, config=config_file)[0] == 0
        paused_at = redis_now(redis)
        beats = len(scheduled(redis, "beat"))

        next(d for d in daemons if d.replica_id == old).signal(signal.SIGKILL)
        code, _, err = ctl("trigger", "beat", url=url, config=config_file)  # mid-failover
        assert code == 0, err
        new = wait_for_leader(redis, timeout_s=5, other_than=old)

        def status_shows_the_new_leader() -> bool:
            lead = status_json(url, config_file)["leader"]
            return bool(lead and lead["replica"] == new and lead["since"])

        wait_until(status_shows_the_new_leader, 5, 0.05)
        status = status_json(url, config_file)
        new_token = status["leader"]["token"]
        assert new_token > old_token
        assert {r["id"]: r["role"] for r in status["replicas"]}[new] == "leader"

        # The new leader honours the pause: cron-beat runs on under it, beat does not.
        def new_leader_ran_cron_beat() -> bool:
            mine = [r for r in scheduled(redis, "cron-beat") if r.replica == new]
            return len(mine) >= 3

        wait_until(new_leader_ran_cron_beat, 10, 0.02)
        assert len(scheduled(redis, "beat")) == beats
        assert status_json(url, config_file)["schedules"][0]["paused"] is True

        code, _, err = ctl("trigger", "beat", url=url, config=config_file)  # after the failover
        assert code == 0, err
        assert ctl("resume", "beat", url=url, config=config_file)[0] == 0
        resumed_at = redis_now(redis)

        def beat_back_under_the_new_leader() -> bool:
            return len([r for r in scheduled(redis, "beat") if r.replica == new]) >= 2

        wait_until(beat_back_under_the_new_leader, 10, 0.02)

    runs = read_runs(redis)
    triggered = manual(redis)
    assert [run.schedule for run in triggered] == ["beat", "beat"]
    assert triggered[0].token in (old_token, 0)  # the dead leader's lease, or none left
    assert triggered[1].token == new_token
    assert all(run.replica == OPERATOR for run in triggered)
    check_invariants(triggered, ignore_manual=False).assert_ok()
    beat_fires = [run.fire_ts for run in runs if run.schedule == "beat" and not run.is_manual]
    assert not [f for f in beat_fires if paused_at < f < int(resumed_at) - 1], beat_fires
    timelines = {s.name: s.timeline for s in config.schedules}
    check_invariants(runs, timelines={"cron-beat": timelines["cron-beat"]}).assert_ok()


def test_a_clean_stop_leaves_status_at_once_and_a_killed_replica_shows_stale(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, tmp_path: Path
) -> None:
    url = redis_server.url

    def listed() -> dict[str, dict[str, Any]]:
        # The real command line, as an operator runs it.
        result = cronlease("status", "--json", "--config", str(config_file), "--redis-url", url)
        assert result.returncode == 0, result.stderr
        return {r["id"]: r for r in json.loads(result.stdout)["replicas"]}

    with replicas(2, config_file, url, tmp_path) as daemons:
        leader = wait_for_leader(redis)
        stopped = next(d for d in daemons if d.replica_id == leader)
        killed = next(d for d in daemons if d.replica_id != leader)
        wait_until(lambda: set(listed()) == {"r1", "r2"}, 10, 0.05)

        # The leader: its stop releases the lease AND removes its heartbeat.
        stopped.signal(signal.SIGTERM)
        assert stopped.wait() == 0
        # Removed before the process exited: the first status after it no longer lists it.
        assert set(listed()) == {killed.replica_id}
        code, out, err = ctl("status", url=url, config=config_file)
        assert code == 0, err
        assert not re.search(rf"^{leader}\s", out, re.M) and "STALE" not in out, out

        wait_for_leader(redis, timeout_s=5, other_than=leader)
        killed.signal(signal.SIGKILL)
        killed.wait()
        killed_at = redis_now(redis)
        # A replica that vanished stays listed, and turns STALE after 3 TTLs (1 s here).
        assert not listed()[killed.replica_id]["stale"]
        wait_until(lambda: redis_now(redis) > killed_at + 3.2, 10, 0.05)
        assert listed()[killed.replica_id]["stale"]
        code, out, err = ctl("status", url=url, config=config_file)
        assert code == 0, err
        assert re.search(rf"^{killed.replica_id}\s+\S+\s+\S+ ago, STALE", out, re.M), out
        assert "STALE: silent for over 3 lease TTLs without a clean stop" in out
