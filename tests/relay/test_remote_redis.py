"""An in-Redis target on ANOTHER Redis instance, through the relay's RemoteRedisDeliverer: a
second real redis-server (tests/redis_server.RedisServer) and a REAL `rq worker` (rq 2.12.0,
tests/targets/workers/rq) on it; the dedup key of store/lua/remote.py (a run delivered again
writes nothing and is counted, even once the job hash is gone); the writes of every in-Redis
target module done through the script exactly as the module builds them; a key of another type
stopping the batch at its run; the other Redis stopped, blocked or a Cluster node.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from scheduler.core.config import parse_config
from scheduler.core.queues import QueueSpec
from scheduler.targets.registry import ENCODERS, encoder_for
from scheduler.targets.relay.base import OutboxRun, TargetUnavailable
from scheduler.targets.relay.remote_redis import (
    DEDUP_PREFIX,
    MIN_DEDUP_TTL_S,
    RemoteRedisDeliverer,
    dedup_ttl_s,
    run_of,
)
from scheduler.targets.runid import decode_run_id
from tests.redis_server import RedisServer, wait_until
from tests.targets.rqworker import Worker, start_rq_worker

FIRE_TS = 1_795_312_800  # 2026-11-22T02:00:00Z
JOB = "rqjobs.record"  # tests/targets/workers/rq/rqjobs.py
WORKER_DB = 0  # the rq worker's; the key-level tests use other databases of the same instance


def queue_spec(url: str, target: str = "rq", **options: Any) -> QueueSpec:
    """The queue as `cronlease validate` makes it from schedules.yaml (defaults filled in)."""
    body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in {"url": url, **options}.items())
    config = parse_config(
        f"queues:\n  jobs: {{target: {target}, {body}}}\n"
        f"schedules:\n  tick: {{every: 1s, job: {JOB}, queue: jobs}}\n"
    )
    return config.queues["jobs"]


def outbox_run(
    schedule: str = "tick", offset: int = 0, args: Any = None, suffix: str = ""
) -> OutboxRun:
    ts = FIRE_TS + offset
    fire_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    fields = {
        "run_id": f"{schedule}@{fire_time}{suffix}",
        "schedule": schedule,
        "job": JOB,
        "args": json.dumps({"n": offset} if args is None else args),
        "queue": "jobs",
        "fire_time": fire_time,
        "fire_ts": str(ts),
        "enqueued_at": fire_time.replace("Z", ".004Z"),
        "trigger": "scheduled",
        "token": "0000000000000007",
        "replica": "r1",
    }
    return OutboxRun(f"{ts}000-0", fields)


def db_url(server: RedisServer, db: int) -> str:
    return f"redis://127.0.0.1:{server.port}/{db}"


@pytest.fixture(scope="module")
def other_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The target's Redis: not the scheduler's (the session's `redis_server`)."""
    server = RedisServer(tmp_path_factory.mktemp("other-redis"), appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def rq_worker(
    other_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    yield from start_rq_worker(other_redis, tmp_path_factory.mktemp("rq-remote"), WORKER_DB, None)


@pytest.fixture
def other(other_redis: RedisServer) -> redis_py.Redis:
    """A client of the other Redis, every database flushed."""
    other_redis.start()
    client = other_redis.client()
    client.flushall()
    return client


@pytest.fixture
def deliverers() -> Iterator[list[RemoteRedisDeliverer]]:
    made: list[RemoteRedisDeliverer] = []
    yield made
    for deliverer in made:
        deliverer.close()


def opened(
    made: list[RemoteRedisDeliverer], spec: QueueSpec, window_s: int = 3600
) -> RemoteRedisDeliverer:
    deliverer = RemoteRedisDeliverer(spec, catchup_window_s=window_s)
    made.append(deliverer)
    assert deliverer.open() == []
    return deliverer


# --- a real rq worker on the other Redis ---------------------------------------------------


def test_a_real_rq_worker_on_the_other_redis_runs_each_run_once(
    rq_worker: Worker,
    other: redis_py.Redis,
    other_redis: RedisServer,
    deliverers: list[RemoteRedisDeliverer],
) -> None:
    rq_worker.reset()
    spec = queue_spec(db_url(other_redis, WORKER_DB))
    first = opened(deliverers, spec)
    runs = [outbox_run(offset=0, args={"n": 1, "s": "ü"}), outbox_run(offset=1, args=[1, "a"])]
    runs += [outbox_run(offset=2), outbox_run(offset=0, suffix="#manual-ab12")]
    result = first.deliver(runs[:3])
    assert (result.confirmed, result.duplicates, result.error) == (3, 0, None)
    rq_worker.wait_for(3)
    # The relay died before its XACK: a new leader's deliverer gets the same runs and one more.
    second = opened(deliverers, spec)
    result = second.deliver(runs)
    assert (result.confirmed, result.duplicates, result.error) == (4, 3, None)
    lines = rq_worker.wait_for(4)
    wait_until(lambda: other.llen("rq:queue:jobs") == 0, 10, 0.05)
    last_job = f"rq:job:{encoder_for(spec).job_id(runs[-1].run_id)}"
    wait_until(lambda: other.hget(last_job, "status") == "finished", 10, 0.05)
    executed = [decode_run_id(line["id"]) for line in rq_worker.lines()]
    assert sorted(executed) == sorted(r.run_id for r in runs)  # each once
    by_id = {decode_run_id(line["id"]): line for line in lines}
    assert by_id[runs[0].run_id]["kwargs"] == {"n": 1, "s": "ü"}
    assert (by_id[runs[1].run_id]["args"], by_id[runs[1].run_id]["kwargs"]) == ([1, "a"], {})
    assert by_id[runs[0].run_id]["meta"] == run_of(runs[0]).meta()
    # Each run's dedup key: its job id, for a week (the catch-up window is shorter).
    for run in runs:
        key = DEDUP_PREFIX + run.run_id
        assert other.get(key) == encoder_for(spec).job_id(run.run_id)
        assert MIN_DEDUP_TTL_S - 60 < other.ttl(key) <= MIN_DEDUP_TTL_S


# --- the script, key by key (databases no worker reads) ------------------------------------


def test_the_dedup_key_holds_after_the_job_hash_expired_and_the_guard_without_it(
    other: redis_py.Redis, other_redis: RedisServer, deliverers: list[RemoteRedisDeliverer]
) -> None:
    client = other_redis.client(db=3)
    spec = queue_spec(db_url(other_redis, 3))
    deliverer = opened(deliverers, spec)
    runs = [outbox_run(offset=i) for i in range(3)]
    assert deliverer.deliver(runs).confirmed == 3
    job_ids = [encoder_for(spec).job_id(r.run_id) for r in runs]
    assert client.lrange("rq:queue:jobs", 0, -1) == job_ids
    # RQ deleted the finished jobs (result_ttl) and the queue is drained: the dedup key alone
    # keeps them from running again.
    client.delete("rq:queue:jobs", *(f"rq:job:{j}" for j in job_ids))
    assert deliverer.deliver(runs).duplicates == 3
    assert client.llen("rq:queue:jobs") == 0
    # Without its dedup key (not written by cronlease), a job hash that exists is the guard;
    # the dedup key is set again.
    client.delete(DEDUP_PREFIX + runs[0].run_id)
    client.hset(f"rq:job:{job_ids[0]}", "status", "queued")
    result = deliverer.deliver(runs[:1])
    assert (result.confirmed, result.duplicates) == (1, 1)
    assert client.llen("rq:queue:jobs") == 0 and client.exists(DEDUP_PREFIX + runs[0].run_id)
    assert other.dbsize() == 0  # nothing in the database the URL does not name


def test_the_dedup_ttl_outlasts_the_catch_up_window(
    other: redis_py.Redis, other_redis: RedisServer, deliverers: list[RemoteRedisDeliverer]
) -> None:
    assert dedup_ttl_s(3600) == MIN_DEDUP_TTL_S
    assert dedup_ttl_s(30 * 86400) == 60 * 86400
    deliverer = opened(deliverers, queue_spec(db_url(other_redis, 3)), window_s=30 * 86400)
    run = outbox_run()
    deliverer.deliver([run])
    ttl = other_redis.client(db=3).ttl(DEDUP_PREFIX + run.run_id)
    assert 60 * 86400 - 60 < ttl <= 60 * 86400


def test_a_key_of_another_type_stops_the_batch_at_its_run(
    other: redis_py.Redis, other_redis: RedisServer, deliverers: list[RemoteRedisDeliverer]
) -> None:
    client = other_redis.client(db=3)
    spec = queue_spec(db_url(other_redis, 3))
    deliverer = opened(deliverers, spec)
    runs = [outbox_run(offset=i) for i in range(3)]
    blocker = f"rq:job:{encoder_for(spec).job_id(runs[1].run_id)}"
    client.set(blocker, "someone else's")
    result = deliverer.deliver(runs)
    assert result.confirmed == 1 and result.duplicates == 0
    assert result.error is not None
    assert f"run {runs[1].run_id!r} not written: key {blocker!r}" in result.error
    assert "holds a string, where rq writes a hash" in result.error
    # The run after it was not written either (it must not overtake), nor marked delivered.
    assert client.lrange("rq:queue:jobs", 0, -1) == [encoder_for(spec).job_id(runs[0].run_id)]
    assert not client.exists(DEDUP_PREFIX + runs[1].run_id, DEDUP_PREFIX + runs[2].run_id)
    client.delete(blocker)
    result = deliverer.deliver(runs)
    assert (result.confirmed, result.duplicates, result.error) == (3, 1, None)


def test_a_large_batch_is_cut_into_calls_and_keeps_its_order(
    other: redis_py.Redis, other_redis: RedisServer, deliverers: list[RemoteRedisDeliverer]
) -> None:
    spec = queue_spec(db_url(other_redis, 3))
    deliverer = opened(deliverers, spec)
    runs = [outbox_run(schedule=f"s{i % 4}", offset=i) for i in range(700)]
    started = time.perf_counter()
    assert deliverer.deliver(runs).confirmed == 700
    elapsed = time.perf_counter() - started
    encoder = encoder_for(spec)
    queued = other_redis.client(db=3).lrange("rq:queue:jobs", 0, -1)
    assert queued == [encoder.job_id(r.run_id) for r in runs]
    assert elapsed < 10, f"700 runs took {elapsed:.1f}s"


def _contents(client: redis_py.Redis) -> dict[str, Any]:
    """Every key of the client's database with its type, value and whether it has a TTL (a
    stream's entries without their ids, which are Redis's clock)."""
    found: dict[str, Any] = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = [fields for _, fields in client.xrange(key)]
        found[key] = (kind, value, client.ttl(key) > 0)
    return found


@pytest.mark.parametrize("target", sorted(ENCODERS))
def test_every_in_redis_target_is_written_as_its_module_builds_it(
    target: str,
    other: redis_py.Redis,
    other_redis: RedisServer,
    deliverers: list[RemoteRedisDeliverer],
) -> None:
    """Through the script on db 4, against the module's ops done one by one on db 5: the same
    keys, types, values (and TTLs), plus the dedup key."""
    spec = queue_spec(db_url(other_redis, 4), target)
    deliverer = opened(deliverers, spec)
    runs = [outbox_run(offset=0, args={"n": 1}), outbox_run(offset=1, args={"n": 2})]
    assert deliverer.deliver(runs).confirmed == 2
    theirs = other_redis.client(db=5, decode_responses=False)
    encoder = encoder_for(spec)
    for run in runs:
        for op in encoder.writes(run_of(run)).ops:
            theirs.execute_command(*op)
    ours = _contents(other_redis.client(db=4, decode_responses=False))
    for run in runs:
        dedup = (DEDUP_PREFIX + run.run_id).encode()
        assert ours.pop(dedup) == ("string", encoder.job_id(run.run_id).encode(), True)
    assert ours == _contents(theirs)
    assert deliverer.deliver(runs).duplicates == 2


# --- the other Redis unavailable -----------------------------------------------------------


def test_the_other_redis_stopped_is_unavailable_and_recovers_with_dedup(
    tmp_path: Path, deliverers: list[RemoteRedisDeliverer]
) -> None:
    server = RedisServer(tmp_path / "target", appendonly=True).start()
    try:
        deliverer = opened(deliverers, queue_spec(db_url(server, 0)))
        runs = [outbox_run(offset=i) for i in range(5)]
        assert deliverer.deliver(runs[:3]).confirmed == 3
        server.stop()
        started = time.monotonic()
        with pytest.raises(TargetUnavailable, match=f"127.0.0.1:{server.port}"):
            deliverer.deliver(runs)
        with pytest.raises(TargetUnavailable, match="cannot reach"):
            RemoteRedisDeliverer(queue_spec(db_url(server, 0))).open()
        assert time.monotonic() - started < 10
        server.start()  # same port, same AOF: the dedup keys are back
        result = deliverer.deliver(runs)
        assert (result.confirmed, result.duplicates, result.error) == (5, 3, None)
        assert server.client().llen("rq:queue:jobs") == 5
    finally:
        server.kill()


def test_a_port_that_never_answers_is_unavailable_within_seconds() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        started = time.monotonic()
        with pytest.raises(TargetUnavailable, match="cannot reach"):
            RemoteRedisDeliverer(queue_spec(url)).open()
        assert time.monotonic() - started < 8


def test_a_cluster_node_is_refused_with_a_sentence(tmp_path: Path) -> None:
    server = RedisServer(
        tmp_path / "cluster",
        extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
    ).start()
    try:
        with pytest.raises(TargetUnavailable, match="Redis Cluster node"):
            RemoteRedisDeliverer(queue_spec(db_url(server, 0))).open()
    finally:
        server.kill()


def test_eviction_is_warned(
    other: redis_py.Redis, other_redis: RedisServer, deliverers: list[RemoteRedisDeliverer]
) -> None:
    other.config_set("maxmemory-policy", "allkeys-lru")
    try:
        deliverer = RemoteRedisDeliverer(queue_spec(db_url(other_redis, 3)))
        deliverers.append(deliverer)
        [warning] = deliverer.open()
        assert "maxmemory-policy allkeys-lru" in warning and "noeviction" in warning
    finally:
        other.config_set("maxmemory-policy", "noeviction")
