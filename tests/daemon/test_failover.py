"""Black-box fault tests: real `cronlease run` processes, real signals, real redis-server.

Leases are 1 s so every scenario finishes in seconds. Each test ends by reading every stream back
and proving the invariants: each (schedule, fire time) at most once, no gap between a schedule's
first and last delivered fire (`catchup: all`), fencing tokens never decreasing in stream order.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from scheduler.core.config import parse_config
from scheduler.core.schedule import Config
from tests.daemons import (
    KEYS,
    TTL_S,
    Daemon,
    frozen_state,
    leader_of,
    replicas,
    stream_length,
    wait_for_fires_past,
    wait_for_leader,
    wait_for_runs,
)
from tests.invariants import prove
from tests.redis_server import RedisServer, wait_until

SCHEDULES = """
schedules:
  beat:
    every: 1s
    job: test.beat
  cron-beat:
    cron: "* * * * * *"
    job: test.cron
    queue: other
"""
RETRY_S = TTL_S / 3  # a follower's longest wait between two campaigns
SLACK_S = 0.5  # a loaded 2-core machine: process scheduling, not protocol


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    return path


@pytest.fixture
def config() -> Config:
    return parse_config(SCHEDULES)


def wait_for_fire_after(client: redis.Redis, moment_s: float, timeout_s: float) -> None:
    """Until both schedules have a run whose fire time is at or after `moment_s`."""
    wait_for_fires_past(client, {"beat", "cron-beat"}, moment_s, timeout_s)


def test_three_replicas_one_leader_runs_on_time(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, config: Config, tmp_path: Path
) -> None:
    with replicas(3, config_file, redis_server.url, tmp_path) as daemons:
        leader = wait_for_leader(redis)
        wait_for_runs(redis, 4, timeout_s=10)
        wait_for_runs(redis, 4, timeout_s=10, queue="other")
        runs = prove(redis, config)
        assert {run.replica for run in runs} == {leader}
        assert sum(d.logged("event=elected") for d in daemons) == 1
        lags = sorted(run.lag_s for run in runs if run.trigger == "scheduled")
        assert lags and lags[0] >= 0 and lags[-1] < 0.5, lags


def test_sigkill_of_the_leader_fails_over_within_the_ttl_and_loses_nothing(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, config: Config, tmp_path: Path
) -> None:
    # A 2 s lease: the gap then always spans at least one fire of the 1 s schedules, so catch-up
    # is exercised every round, not only when the kill happens to land late in a second.
    ttl_s = 2.0
    with replicas(3, config_file, redis_server.url, tmp_path, ttl_s=ttl_s) as daemons:
        gaps = []
        for round_ in range(3):
            leader = wait_for_leader(redis)
            wait_for_runs(redis, stream_length(redis) + 2, timeout_s=10)
            victim = next(d for d in daemons if d.replica_id == leader)
            killed_at = time.monotonic()
            victim.signal(signal.SIGKILL)
            wait_for_leader(redis, timeout_s=5, other_than=leader)
            gaps.append(time.monotonic() - killed_at)
            victim.kill()
            replacement = f"r{len(daemons) + 1}"
            daemons.append(Daemon(replacement, config_file, redis_server.url, tmp_path, ttl_s))
            del round_
        killed_at = time.time()
        wait_for_fire_after(redis, killed_at + 1, timeout_s=10)
    runs = prove(redis, config)
    assert max(gaps) <= ttl_s + ttl_s / 3 + SLACK_S, gaps
    assert any(run.trigger == "catchup" for run in runs), "the missed fires were caught up"


def test_a_frozen_leader_is_fenced_when_it_wakes_and_writes_nothing(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, config: Config, tmp_path: Path
) -> None:
    # The failpoint freezes r1 with a batch in flight: after its lease check, before its write.
    frozen = Daemon(
        "frozen",
        config_file,
        redis_server.url,
        tmp_path,
        env={"CRONLEASE_FAILPOINTS": "before-enqueue=stop"},
    )
    try:
        wait_for_leader(redis)
        wait_until(lambda: frozen_state(frozen.pid) == "T", 10, 0.01)
        with replicas(1, config_file, redis_server.url, tmp_path):
            new_leader = wait_for_leader(redis, timeout_s=5, other_than="frozen")
            wait_for_runs(redis, 3, timeout_s=10)
            frozen.signal(signal.SIGCONT)
            wait_until(lambda: frozen.logged("write FENCED"), 10, 0.02)
            seen = stream_length(redis)
            wait_for_runs(redis, seen + 2, timeout_s=10)
            runs = prove(redis, config)
            assert {run.replica for run in runs} == {new_leader}
            assert leader_of(redis) is not None and leader_of(redis)[1] == new_leader  # type: ignore[index]
    finally:
        frozen.kill()


def test_a_leader_stopped_past_its_lease_stands_down_after_sigcont(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, config: Config, tmp_path: Path
) -> None:
    with replicas(2, config_file, redis_server.url, tmp_path) as daemons:
        leader = wait_for_leader(redis)
        wait_for_runs(redis, 2, timeout_s=10)
        victim = next(d for d in daemons if d.replica_id == leader)
        victim.signal(signal.SIGSTOP)
        successor = wait_for_leader(redis, timeout_s=5, other_than=leader)
        wait_for_runs(redis, stream_length(redis) + 2, timeout_s=10)
        victim.signal(signal.SIGCONT)
        wait_until(lambda: victim.logged("no longer leading"), 10, 0.02)
        wait_for_runs(redis, stream_length(redis) + 2, timeout_s=10)
        runs = prove(redis, config)
        old_token = min(run.token for run in runs)
        woke = [run for run in runs if run.replica == leader]
        assert all(run.token == old_token for run in woke)
        assert leader_of(redis) == (max(run.token for run in runs), successor)


def test_sigterm_hands_over_within_a_second_and_exits_zero(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, config: Config, tmp_path: Path
) -> None:
    with replicas(2, config_file, redis_server.url, tmp_path) as daemons:
        leader = wait_for_leader(redis)
        wait_for_runs(redis, 2, timeout_s=10)
        victim = next(d for d in daemons if d.replica_id == leader)
        stopped_at = time.monotonic()
        victim.signal(signal.SIGTERM)
        wait_for_leader(redis, timeout_s=1.0 + SLACK_S, other_than=leader)
        handover_s = time.monotonic() - stopped_at
        assert victim.wait(timeout_s=2.0 + SLACK_S) == 0
        assert victim.logged("released the lease (ok)")
        stopped_wall = time.time()
        wait_for_fire_after(redis, stopped_wall + 1, timeout_s=5)
    runs = prove(redis, config)
    assert handover_s < 1.0, handover_s
    after = [run for run in runs if run.replica != leader]
    assert after and all(run.lag_s < 1.0 for run in after if run.trigger == "scheduled")


def test_client_pause_longer_than_the_lease(
    fresh_redis_server: RedisServer, config_file: Path, config: Config, tmp_path: Path
) -> None:
    client = fresh_redis_server.client()
    with replicas(2, config_file, fresh_redis_server.url, tmp_path):
        wait_for_leader(client)
        wait_for_runs(client, 2, timeout_s=10)
        fresh_redis_server.pause(int(TTL_S * 2500))
        paused_until = time.time() + TTL_S * 2.5
        wait_for_fire_after(client, paused_until + 2, timeout_s=15)
    prove(client, config)


def test_redis_restarted_with_aof_loses_nothing_and_reloads_scripts(
    fresh_redis_server: RedisServer, config_file: Path, config: Config, tmp_path: Path
) -> None:
    client = fresh_redis_server.client()
    with replicas(2, config_file, fresh_redis_server.url, tmp_path):
        wait_for_leader(client)
        wait_for_runs(client, 3, timeout_s=10)
        fresh_redis_server.restart()
        client = fresh_redis_server.client()
        restarted_at = time.time()
        wait_for_fire_after(client, restarted_at + 2, timeout_s=15)
        assert client.get(KEYS.generation) is not None
    runs = prove(client, config)
    assert min(run.fire_ts for run in runs) < restarted_at - 1, "runs from before the restart"


def test_redis_restarted_without_persistence_is_detected_and_survived(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    server = RedisServer(tmp_path / "volatile", appendonly=False)
    server.start()
    try:
        client = server.client()
        with replicas(2, config_file, server.url, tmp_path) as daemons:
            wait_for_leader(client)
            wait_for_runs(client, 3, timeout_s=10)
            server.restart()  # no AOF, no RDB: everything is gone
            client = server.client()
            wait_until(lambda: any(d.logged("LOST ITS DATA") for d in daemons), 10, 0.05)
            restarted_at = time.time()
            wait_for_fire_after(client, restarted_at + 1, timeout_s=10)
            assert all(d.alive() for d in daemons)
        runs = prove(client, config)
        # Started from now: nothing replayed from before the loss.
        assert min(run.fire_ts for run in runs) >= restarted_at - 3
    finally:
        server.kill()


def test_a_replica_with_its_clock_an_hour_off_enqueues_on_time(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, config: Config, tmp_path: Path
) -> None:
    for offset_s in (3600.0, -3600.0):
        redis.flushall()
        skewed = Daemon("skewed", config_file, redis_server.url, tmp_path, clock_offset_s=offset_s)
        try:
            assert wait_for_leader(redis) == "skewed"
            with replicas(1, config_file, redis_server.url, tmp_path):
                wait_for_runs(redis, 4, timeout_s=10)
        finally:
            skewed.kill()
        runs = prove(redis, config)
        for run in runs:
            # The entry id is Redis's own clock at XADD: never early, never late.
            written_ms = int(run.entry_id.split("-")[0])
            assert run.fire_ts * 1000 <= written_ms < run.fire_ts * 1000 + 1000, run


def test_redis_down_for_30_seconds_then_back_resumes_with_catch_up(
    fresh_redis_server: RedisServer, config_file: Path, config: Config, tmp_path: Path
) -> None:
    client = fresh_redis_server.client()
    with replicas(2, config_file, fresh_redis_server.url, tmp_path) as daemons:
        wait_for_leader(client)
        wait_for_runs(client, 2, timeout_s=10)
        fresh_redis_server.stop()
        down_at = time.monotonic()
        wait_until(lambda: all(d.logged("cannot reach Redis") for d in daemons), 10, 0.05)
        # The outage itself is the scenario: hold Redis down for 30 s, checking the daemons live.
        wait_until(
            lambda: time.monotonic() - down_at >= 30 or not all(d.alive() for d in daemons),
            40,
            0.2,
        )
        assert all(d.alive() for d in daemons)
        fresh_redis_server.start()
        client = fresh_redis_server.client()
        back_at = time.time()
        wait_for_fire_after(client, back_at + 1, timeout_s=10)
    runs = prove(client, config)
    caught_up = [run for run in runs if run.trigger == "catchup"]
    assert len(caught_up) >= 2 * 25, "the outage's fires were caught up"
