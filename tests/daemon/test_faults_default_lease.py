"""Faults a leader must survive WITH its lease: real daemons on the default 10 s lease.

The 1 s leases of test_failover.py turn every fault into a re-election, and a new leader rebuilds
its state from Redis, which hides what happens to a leader that lives through the fault. Here the
lease outlasts the fault (a 2 s Redis restart), or the fault is one the lease must NOT outlast (a
wedged main loop), or the gap between leaders is long enough to swallow a fire (a crash before a
new schedule's first fire). Each test ends with the invariant checker over every stream.
"""

from __future__ import annotations

import math
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis

from scheduler.core.config import parse_config
from tests.daemons import (
    KEYS,
    Daemon,
    latest_fires,
    leader_of,
    replicas,
    wait_for_fires_past,
    wait_for_leader,
    wait_for_runs,
)
from tests.invariants import prove, read_runs
from tests.redis_server import RedisServer, wait_until

DEFAULT_TTL_S = 10.0
SLACK_S = 3.0  # a loaded 2-core machine: process start-up and scheduling, not protocol
# Once a wedged leader stops renewing, its last renewal (made at most a renewal interval
# before) runs out within a TTL, and a follower campaigns at least every TTL/3.
BOUND_S = DEFAULT_TTL_S + DEFAULT_TTL_S / 3

THREE_EVERY_SECOND = """
schedules:
  beat-a:
    every: 1s
    job: test.a
  beat-b:
    cron: "* * * * * *"
    job: test.b
    queue: other
  beat-c:
    every: 1s
    job: test.c
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_redis_restart_inside_the_lease_keeps_every_schedule_firing(
    fresh_redis_server: RedisServer, tmp_path: Path
) -> None:
    # Before the fix: the leader logged "Redis is back", kept renewing, stayed ready, and never
    # wrote another run; the instant's schedules were popped and then stranded.
    config_file = write(tmp_path / "schedules.yaml", THREE_EVERY_SECOND)
    config = parse_config(THREE_EVERY_SECOND)
    client = fresh_redis_server.client()
    with replicas(2, config_file, fresh_redis_server.url, tmp_path, ttl_s=DEFAULT_TTL_S):
        wait_for_leader(client)
        wait_for_runs(client, 3, timeout_s=10)
        holder = leader_of(client)
        fresh_redis_server.restart(down_s=2.0)
        client = fresh_redis_server.client()
        back_at = time.time()
        wait_for_fires_past(client, {"beat-a", "beat-b", "beat-c"}, back_at + 3, 15)
        assert leader_of(client) == holder, "the lease outlived the restart: same leader, token"
    runs = prove(client, config)
    restarted = [run for run in runs if run.fire_ts > back_at - 2.5]
    assert {run.schedule for run in restarted} == {"beat-a", "beat-b", "beat-c"}


def test_a_new_schedules_first_fire_survives_a_leader_crash_before_it(tmp_path: Path) -> None:
    # A schedule with no cursor yet whose first fire falls in the gap between two leaders:
    # before the fix the next leader saw it as new, started from ITS now, and the fire was
    # lost without a misfire. Covers both ways a leader starts serving one: at a takeover,
    # and when a reload adds it.
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        client = server.client()
        base = "schedules:\n  beat:\n    every: 1s\n    job: test.beat\n"
        config_file = write(tmp_path / "schedules.yaml", base)
        first = Daemon("first", config_file, server.url, tmp_path, ttl_s=DEFAULT_TTL_S)
        try:
            assert wait_for_leader(client, timeout_s=10) == "first"
            wait_for_runs(client, 1, timeout_s=10)
            # The reload adds two one-shots due in a few seconds: well inside the gap a crash
            # leaves before the next leader (one TTL).
            soon = math.ceil(time.time()) + 4
            added = (
                base + f"  launch:\n    at: '{rfc3339(soon)}'\n    job: promo.start\n"
                f"  weekly:\n    at: '{rfc3339(soon + 1)}'\n    job: promo.weekly\n"
            )
            write(config_file, added)
            wait_until(lambda: first.logged("config reloaded"), 10, 0.05)
            wait_until(lambda: client.hexists(KEYS.cursor, "launch"), 5, 0.02)
            assert time.time() < soon, "the machine was too slow to crash the leader in time"
            first.signal(signal.SIGKILL)
            first.kill()
        finally:
            first.kill()
        with replicas(1, config_file, server.url, tmp_path, ttl_s=DEFAULT_TTL_S):
            wait_for_leader(client, timeout_s=DEFAULT_TTL_S + SLACK_S, other_than="first")
            wait_until(lambda: {"launch", "weekly"} <= set(latest_fires(client)), 10, 0.05)
        runs = prove(client, parse_config(added))
        shots = {run.schedule: run for run in runs if run.schedule in ("launch", "weekly")}
        assert shots["launch"].fire_ts == soon and shots["launch"].trigger == "catchup"
        assert shots["weekly"].fire_ts == soon + 1 and shots["weekly"].trigger == "catchup"
    finally:
        server.kill()


def test_a_schedule_first_served_at_a_takeover_keeps_its_first_fire(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        client = server.client()
        soon = math.ceil(time.time()) + 6
        text = (
            "schedules:\n  beat:\n    every: 1s\n    job: test.beat\n"
            f"  launch:\n    at: '{rfc3339(soon)}'\n    job: promo.start\n"
        )
        config_file = write(tmp_path / "schedules.yaml", text)
        first = Daemon("first", config_file, server.url, tmp_path, ttl_s=DEFAULT_TTL_S)
        try:
            assert wait_for_leader(client, timeout_s=10) == "first"
            wait_until(lambda: client.hexists(KEYS.cursor, "launch"), 5, 0.02)
            if time.time() >= soon:
                pytest.skip("the machine was too slow to crash the leader before the fire")
            first.signal(signal.SIGKILL)
        finally:
            first.kill()
        with replicas(1, config_file, server.url, tmp_path, ttl_s=DEFAULT_TTL_S):
            wait_for_leader(client, timeout_s=DEFAULT_TTL_S + SLACK_S, other_than="first")
            wait_until(lambda: "launch" in latest_fires(client), 10, 0.05)
        runs = prove(client, parse_config(text))
        (launch,) = [run for run in runs if run.schedule == "launch"]
        assert (launch.fire_ts, launch.trigger) == (soon, "catchup")
    finally:
        server.kill()


def test_a_wedged_main_loop_gives_up_its_lease(
    redis_server: RedisServer, redis: redis.Redis, tmp_path: Path
) -> None:
    # The renewal thread used to keep the lease for a main loop that had hung: no runs, and no
    # other replica could ever take over. Now it stops renewing past the health threshold
    # (3 TTLs) and a follower leads when the last renewal runs out: at most 3 TTLs + one
    # renewal interval + one TTL after the loop's last turn.
    config_file = write(tmp_path / "schedules.yaml", THREE_EVERY_SECOND)
    wedged = Daemon(
        "wedged",
        config_file,
        redis_server.url,
        tmp_path,
        ttl_s=DEFAULT_TTL_S,
        env={"CRONLEASE_FAILPOINTS": "main-loop=hang@12"},
    )
    try:
        assert wait_for_leader(redis, timeout_s=10) == "wedged"
        with replicas(1, config_file, redis_server.url, tmp_path, ttl_s=DEFAULT_TTL_S):
            # The loop wedges on its 12th turn, a few seconds in; 3 TTLs later the renewals stop.
            wait_until(lambda: wedged.logged("NOT renewing the lease"), 3 * DEFAULT_TTL_S + 15, 0.1)
            withheld_at = time.monotonic()
            successor = wait_for_leader(redis, timeout_s=BOUND_S + SLACK_S, other_than="wedged")
            took_s = time.monotonic() - withheld_at
            wait_for_fires_past(redis, {"beat-a", "beat-b", "beat-c"}, time.time() + 1, 10)
        assert wedged.alive(), "the HTTP thread and the process live on; only the lease went"
        runs = prove(redis, parse_config(THREE_EVERY_SECOND))
        assert runs[-1].replica == successor
        # The last renewal was made at most one renewal interval before renewals stopped.
        assert took_s <= BOUND_S + SLACK_S
    finally:
        wedged.kill()


def test_a_takeover_that_fails_half_way_gives_the_lease_back_at_once(
    redis_server: RedisServer, redis: redis.Redis, tmp_path: Path
) -> None:
    # Before the fix an error after the acquire (reading cursors, recording leader info) left
    # the lease held by a replica that did not lead: one TTL (10 s) with no leader.
    config_file = write(tmp_path / "schedules.yaml", THREE_EVERY_SECOND)
    daemon = Daemon(
        "flaky",
        config_file,
        redis_server.url,
        tmp_path,
        ttl_s=DEFAULT_TTL_S,
        env={"CRONLEASE_FAILPOINTS": "promote=redis-error"},
    )
    try:
        wait_until(lambda: daemon.logged("could not take over"), 10, 0.02)
        failed_at = time.monotonic()
        wait_until(lambda: daemon.logged("leading with fencing token"), 5, 0.02)
        assert time.monotonic() - failed_at < DEFAULT_TTL_S / 2
        wait_for_runs(redis, 3, timeout_s=10)
        tokens = {run.token for run in read_runs(redis)}
        assert len(tokens) == 1 and leader_of(redis) == (tokens.pop(), "flaky")
    finally:
        daemon.kill()


def test_a_queue_key_of_the_wrong_type_is_refused_without_duplicating_other_queues(
    redis_server: RedisServer, redis: redis.Redis, tmp_path: Path
) -> None:
    # Before the fix the script's XADD to the broken key failed part-way: the XADDs before it
    # in the same call stayed, the cursor did not move, and every retry wrote them again.
    text = """
schedules:
  good-1: {every: 1s, job: test.g1}
  broken: {every: 1s, job: test.b, queue: broken}
  good-2: {every: 1s, job: test.g2, queue: other}
"""
    config_file = write(tmp_path / "schedules.yaml", text)
    redis.set(KEYS.queue("broken"), "not a stream")
    with replicas(1, config_file, redis_server.url, tmp_path, ttl_s=DEFAULT_TTL_S) as (daemon,):
        wait_for_leader(redis)
        wait_for_runs(redis, 6, timeout_s=10)
        prove(redis, parse_config(text))  # no duplicate on the queues that work
        assert daemon.logged("REFUSED runs")
        assert redis.get(KEYS.queue("broken")) == "not a stream"
        assert "broken" not in latest_fires(redis)
        redis.delete(KEYS.queue("broken"))
        fixed_at = time.time()
        wait_for_fires_past(redis, {"good-1", "broken", "good-2"}, fixed_at + 1, 15)
        assert daemon.logged("takes runs again")
    runs = prove(redis, parse_config(text))
    broken = [run for run in runs if run.schedule == "broken"]
    first_good = min(run.fire_ts for run in runs if run.schedule == "good-1")
    # Held, not dropped: the broken queue's runs start where the others did (catch-up).
    assert broken[0].fire_ts <= first_good + 1
