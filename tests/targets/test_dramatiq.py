"""Dramatiq target: the message is the one Dramatiq's own RedisBroker writes, and a REAL
`dramatiq` worker (dramatiq 2.2.1, from tests/targets/workers/dramatiq) executes every run exactly
once through leader failovers.

Dramatiq's dispatch.lua "enqueue" also ZADDs the enqueuer to `__heartbeats__`; ours is a plain
HSET + RPUSH, and the real worker must (and does) fetch, run and ack it all the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import redis as redis_py

from scheduler.core.queues import QueueSpec
from scheduler.targets.dramatiq import DramatiqEncoder, redis_message_id
from scheduler.targets.encoding import WRITE_COMMANDS, Run
from tests.redis_server import RedisServer, wait_until
from tests.targets.harness import prove_exactly_once_through_failover
from tests.targets.workers import (
    RecordedWorker,
    launch,
    stop_group,
    venv_bin,
    wait_ready,
    worker_dir,
)

START_TIMEOUT_S = 20.0


def spec(name: str = "jobs", namespace: str = "dramatiq", db: int | None = None) -> QueueSpec:
    return QueueSpec(
        queue="jobs",
        target="dramatiq",
        name=name,
        db=db,
        options=MappingProxyType({"namespace": namespace}),
    )


def make_run(
    schedule: str = "tick",
    fire_ts: int = 1_795_312_800,
    args: Mapping[str, Any] | tuple[Any, ...] = MappingProxyType({"n": 1}),
    job: str = "record",
) -> Run:
    fire_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fire_ts))
    return Run(
        run_id=f"{schedule}@{fire_time}",
        schedule=schedule,
        job=job,
        args=args,
        args_json=json.dumps(args if isinstance(args, tuple) else dict(args)),
        queue="jobs",
        fire_time=fire_time,
        fire_ts=fire_ts,
        enqueued_at=fire_ts + 0.0047,
        enqueued_at_text=time.strftime("%Y-%m-%dT%H:%M:%S.004Z", time.gmtime(fire_ts)),
        trigger="scheduled",
        token="0000000000000007",
        replica="r1",
    )


# --- the encoder alone ---------------------------------------------------------------------


def test_writes_hset_of_the_message_then_rpush_of_its_redis_id_and_has_no_guard() -> None:
    run = make_run()
    writes = DramatiqEncoder(spec("mail", namespace="ns")).writes(run)
    assert writes.guard is None
    (hset, hkey, field, data), (rpush, lkey, pushed) = writes.ops
    assert (hset, hkey, rpush, lkey) == ("HSET", "ns:mail.msgs", "RPUSH", "ns:mail")
    assert {hset, rpush} <= set(WRITE_COMMANDS)
    assert field == pushed == redis_message_id(run.run_id)
    assert json.loads(data)["options"]["redis_message_id"] == field


def test_message_id_is_the_run_id_and_the_run_rides_in_options() -> None:
    encoder = DramatiqEncoder(spec())
    run = make_run()
    assert encoder.job_id(run.run_id) == run.run_id
    message = json.loads(encoder.writes(run).ops[0][3])
    assert message["message_id"] == run.run_id
    assert message["actor_name"] == "record" and message["queue_name"] == "jobs"
    assert message["options"]["cronlease"] == run.meta()
    assert message["message_timestamp"] == 1_795_312_800_004  # ms, truncated as Dramatiq does
    assert list(message) == [
        "queue_name", "actor_name", "args", "kwargs", "options", "message_id",
        "message_timestamp",
    ]  # fmt: skip


def test_a_mapping_is_kwargs_and_a_tuple_positional_args() -> None:
    encoder = DramatiqEncoder(spec())

    def args_of(run: Run) -> tuple[Any, Any]:
        message = json.loads(encoder.writes(run).ops[0][3])
        return message["args"], message["kwargs"]

    assert args_of(make_run(args={"to": "a@b"})) == ([], {"to": "a@b"})
    assert args_of(make_run(args=(1, "x"))) == ([1, "x"], {})
    assert args_of(make_run(args={})) == ([], {})


def test_redis_message_ids_are_unique_per_run_and_a_pure_function_of_it() -> None:
    assert redis_message_id("a@1") == redis_message_id("a@1")
    assert len({redis_message_id(f"a@{i}") for i in range(1000)}) == 1000


def test_lengths_are_the_queue_and_its_delay_queue() -> None:
    lengths = DramatiqEncoder(spec("mail", namespace="ns")).lengths()
    assert [(length.key, length.kind) for length in lengths] == [
        ("ns:mail", "list"),
        ("ns:mail.DQ", "list"),
    ]


ENQUEUE = """
import json, sys
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message
url, namespace, message = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
broker = RedisBroker(url=url, namespace=namespace)
broker.enqueue(Message(**message))
"""


@pytest.mark.parametrize(
    ("namespace", "args"), [("dramatiq", {"n": 1, "to": "ü"}), ("app-ns", (1, "two", [3]))]
)
def test_the_message_is_the_one_dramatiqs_own_broker_writes(
    redis: redis_py.Redis,
    redis_server: RedisServer,
    namespace: str,
    args: Mapping[str, Any] | tuple[Any, ...],
) -> None:
    """RedisBroker.enqueue of a Message with the same fields writes the same bytes under the
    same keys, but for its random redis_message_id (and its own heartbeat)."""
    python = venv_bin("dramatiq", "python")
    encoder = DramatiqEncoder(spec("mail", namespace=namespace))
    run = make_run(args=args)
    (_, hkey, ours_id, ours_data), (_, lkey, _) = encoder.writes(run).ops
    ours = json.loads(ours_data)
    message = {**ours, "options": {"cronlease": run.meta()}}
    db = 2
    url = f"{redis_server.url.rsplit('/', 1)[0]}/{db}"
    subprocess.run(
        [str(python), "-c", ENQUEUE, url, namespace, json.dumps(message)], check=True, timeout=60
    )
    client = redis_server.client(db=db)
    assert sorted(client.keys("*")) == sorted([hkey, lkey, f"{namespace}:__heartbeats__"])
    [theirs_id] = client.lrange(lkey, 0, -1)
    theirs_data = client.hget(hkey, theirs_id)
    assert theirs_data == ours_data.replace(ours_id, theirs_id)


# --- the real worker -----------------------------------------------------------------------


class Worker(RecordedWorker):
    def lines(self) -> list[list[str]]:
        return [line.split("\t") for line in self.raw_lines()]

    def executed(self) -> list[str]:
        return [fields[0] for fields in self.lines()]


@pytest.fixture(scope="module")
def worker(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    dramatiq = venv_bin("dramatiq", "dramatiq")
    folder = tmp_path_factory.mktemp("dramatiq-worker")
    record, log = folder / "executed.tsv", folder / "worker.log"
    env = {
        **os.environ,
        "DRAMATIQ_REDIS_URL": redis_server.url,
        "CRONLEASE_RECORD": str(record),
    }
    command = [
        str(dramatiq), "tasks", "--processes", "1", "--threads", "1", "--queues", "jobs",
        "--path", str(worker_dir("dramatiq")),
    ]  # fmt: skip
    # Its own process group: stop_group reaches dramatiq's master and its worker process.
    started = Worker(launch(command, worker_dir("dramatiq"), env, log), record, log)
    try:
        wait_ready(started, "ready for action", "dramatiq", START_TIMEOUT_S)
        yield started
    finally:
        stop_group(started.process)


@pytest.fixture
def fresh_worker(worker: Worker, redis: redis_py.Redis) -> Worker:
    """The module's worker with an empty record, on a flushed Redis."""
    worker.reset()
    return worker


def test_the_real_worker_runs_a_plain_hset_rpush_with_its_id_and_fire_time(
    fresh_worker: Worker, redis: redis_py.Redis
) -> None:
    encoder = DramatiqEncoder(spec())
    runs = [
        make_run(fire_ts=1_795_312_800, args={"n": 1}),
        make_run(fire_ts=1_795_312_801, args=(1, "a")),
        make_run(schedule="other", args={}),
    ]
    for run in runs:
        for op in encoder.writes(run).ops:
            redis.execute_command(*op)

    def all_ran() -> bool:
        assert fresh_worker.process.poll() is None, fresh_worker.log_tail()
        return len(fresh_worker.lines()) >= len(runs)

    try:
        wait_until(all_ran, 15, 0.05)
    except AssertionError:
        raise AssertionError(f"ran {fresh_worker.lines()}\n{fresh_worker.log_tail()}") from None
    by_id = {fields[0]: fields for fields in fresh_worker.lines()}
    assert sorted(by_id) == sorted(run.run_id for run in runs)
    for run in runs:
        _, fire_time, args, kwargs, queue_name = by_id[run.run_id]
        assert fire_time == run.fire_time
        if isinstance(run.args, tuple):
            assert (args, kwargs) == (repr(run.args), "{}")
        else:
            assert (args, kwargs) == ("()", repr(dict(run.args)))
        assert queue_name == "jobs"
    # Acknowledged (dispatch.lua "ack" deletes the message from the hash), nothing waiting.
    wait_until(lambda: redis.hlen("dramatiq:jobs.msgs") == 0, 5, 0.05)
    assert redis.llen("dramatiq:jobs") == 0


def test_exactly_once_through_failover_into_a_real_dramatiq_worker(
    fresh_worker: Worker, redis_server: RedisServer, tmp_path: Path
) -> None:
    proof = prove_exactly_once_through_failover(
        redis_server, tmp_path, "target: dramatiq", "record", fresh_worker.executed
    )
    for message_id, fire_time, *_ in fresh_worker.lines():
        assert message_id.endswith(f"@{fire_time}")
    assert len(proof.executed) >= 12
