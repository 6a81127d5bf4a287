"""arq target: the job key and zset entry are the ones arq's own enqueue_job writes, and a REAL
arq worker (arq 0.28.0, its own venv: arq pins redis-py < 6; tests/targets/workers/arq)
executes every run exactly once through leader failovers.

The worker runs with arq's default queue name (`arq:queue`, so the queue is configured with
`name: "arq:queue"`) against the session Redis in db 1, so db selection is proven by a real
worker too.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import redis as redis_py

from scheduler.core.queues import QueueSpec
from scheduler.targets.arq import ArqEncoder, payload
from scheduler.targets.encoding import WRITE_COMMANDS, Run
from tests.redis_server import RedisServer, wait_until
from tests.targets.harness import prove_exactly_once_through_failover
from tests.targets.workers import (
    RecordedWorker,
    launch,
    stop_group,
    url_with_db,
    venv_bin,
    wait_ready,
    worker_dir,
)

WORKER_DB = 1
ARQ_QUEUE = "arq:queue"
START_TIMEOUT_S = 20.0
FIRE_TS = 1_795_312_800  # 2026-11-22T02:00:00Z


def spec(name: str = ARQ_QUEUE, db: int | None = None, **options: Any) -> QueueSpec:
    full = {"expires": 86400, **options}
    return QueueSpec(queue="jobs", target="arq", name=name, db=db, options=MappingProxyType(full))


def make_run(
    schedule: str = "tick",
    fire_ts: int = FIRE_TS,
    args: Mapping[str, Any] | tuple[Any, ...] = MappingProxyType({"n": 1}),
    job: str = "record",
    enqueued_at: float | None = None,
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
        enqueued_at=fire_ts + 0.0046 if enqueued_at is None else enqueued_at,
        enqueued_at_text=time.strftime("%Y-%m-%dT%H:%M:%S.004Z", time.gmtime(fire_ts)),
        trigger="scheduled",
        token="0000000000000007",
        replica="r1",
    )


# --- the encoder alone ---------------------------------------------------------------------


def test_job_id_is_the_run_id_and_its_job_key_is_the_guard() -> None:
    encoder = ArqEncoder(spec("jobs", expires=3600))
    run = make_run()
    assert encoder.job_id(run.run_id) == run.run_id == "tick@2026-11-22T02:00:00Z"
    writes = encoder.writes(run)
    assert writes.guard == "arq:job:tick@2026-11-22T02:00:00Z"
    (psetex, key, ms, data), zadd = writes.ops
    assert (psetex, key, ms) == ("PSETEX", writes.guard, 3_600_000)
    # Due at its fire time (never later than Redis's clock when the script writes it).
    assert zadd == ("ZADD", "jobs", FIRE_TS * 1000, run.run_id)
    assert all(op[0] in WRITE_COMMANDS for op in writes.ops)
    assert data[:2] == b"\x80\x04"  # pickle protocol 4: what every Python arq runs on reads


def test_the_queue_name_is_the_zset_key_and_its_length() -> None:
    [length] = ArqEncoder(spec("arq:queue", db=3)).lengths()
    assert (length.key, length.kind) == ("arq:queue", "zset")
    [length] = ArqEncoder(spec("reports")).lengths()
    assert (length.key, length.kind) == ("reports", "zset")


def test_payload_is_serialize_jobs_dict_a_mapping_kwargs_a_tuple_args() -> None:
    encoder = ArqEncoder(spec())
    run = make_run(args={"to": "a@b", "n": 2})
    assert pickle.loads(encoder.writes(run).ops[0][3]) == {
        "t": None,
        "f": "record",
        "a": (),
        "k": {"to": "a@b", "n": 2},
        "et": FIRE_TS * 1000 + 5,
    }
    assert payload(make_run(args=(1, "ü", [3]))) == {
        "t": None,
        "f": "record",
        "a": (1, "ü", [3]),
        "k": {},
        "et": FIRE_TS * 1000 + 5,
    }


ENQUEUE = """
import asyncio, json, sys
from arq.connections import RedisSettings, create_pool
url, run = sys.argv[1], json.loads(sys.argv[2])
args, kwargs = (tuple(run["args"]), {}) if isinstance(run["args"], list) else ((), run["args"])

async def main():
    pool = await create_pool(RedisSettings.from_dsn(url))
    job = await pool.enqueue_job(run["job"], *args, _job_id=run["job_id"],
                                 _queue_name=run["name"], **kwargs)
    print(json.dumps(job is not None))
    await pool.aclose()

asyncio.run(main())
"""


def arq_enqueue(redis_server: RedisServer, db: int, run: Run, name: str) -> bool:
    """arq's own ArqRedis.enqueue_job of `run`; whether it enqueued (False: a duplicate)."""
    python = venv_bin("arq", "python")
    job = {
        "job": run.job,
        "args": list(run.args) if isinstance(run.args, tuple) else dict(run.args),
        "job_id": run.run_id,
        "name": name,
    }
    done = subprocess.run(
        [str(python), "-c", ENQUEUE, url_with_db(redis_server, db), json.dumps(job)],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    enqueued: bool = json.loads(done.stdout)
    return enqueued


@pytest.mark.parametrize("args", [{"n": 1, "to": "ü"}, (1, "two", [3]), {}])
def test_the_job_is_the_one_arqs_own_enqueue_job_writes(
    redis: redis_py.Redis, redis_server: RedisServer, args: Mapping[str, Any] | tuple[Any, ...]
) -> None:
    """enqueue_job, with the same id, function, args and queue, writes the same keys and the
    same pickle byte for byte but for the enqueue time (arq's clock); the score differs by
    choice: enqueue_job scores its enqueue time, cronlease the fire time."""
    run = make_run(args=args)
    assert arq_enqueue(redis_server, 4, run, "mail")
    ours_client = redis_server.client(db=5)
    for op in ArqEncoder(spec("mail")).writes(run).ops:
        ours_client.execute_command(*op)
    theirs_client = redis_server.client(db=4)
    assert sorted(ours_client.keys("*")) == sorted(theirs_client.keys("*"))
    assert ours_client.zrange("mail", 0, -1) == theirs_client.zrange("mail", 0, -1) == [run.run_id]
    key = f"arq:job:{run.run_id}"
    assert abs(ours_client.pttl(key) - theirs_client.pttl(key)) < 10_000
    raw = redis_server.client(db=4, decode_responses=False)
    theirs_bytes = raw.get(key)
    ours_bytes = redis_server.client(db=5, decode_responses=False).get(key)
    theirs = pickle.loads(theirs_bytes)
    assert list(theirs) == ["t", "f", "a", "k", "et"]
    assert ours_bytes == pickle.dumps(payload(run), protocol=4)
    assert theirs_bytes == pickle.dumps({**payload(run), "et": theirs["et"]}, protocol=4)


def test_arqs_own_enqueue_refuses_a_run_cronlease_wrote(
    redis: redis_py.Redis, redis_server: RedisServer
) -> None:
    """Same job id, same job key: enqueue_job (e.g. a producer re-sending the run by hand)
    sees the run as already there, as the guard makes cronlease see arq's own."""
    run = make_run()
    client = redis_server.client(db=3)
    for op in ArqEncoder(spec()).writes(run).ops:
        client.execute_command(*op)
    assert not arq_enqueue(redis_server, 3, run, ARQ_QUEUE)
    assert client.zcard(ARQ_QUEUE) == 1


# --- the real worker -----------------------------------------------------------------------


class Worker(RecordedWorker):
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.raw_lines()]

    def executed(self) -> list[str]:
        return [line["id"] for line in self.lines()]


@pytest.fixture(scope="module")
def worker(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    arq = venv_bin("arq", "arq")
    folder = tmp_path_factory.mktemp("arq-worker")
    record, log = folder / "executed.jsonl", folder / "worker.log"
    env = {
        **os.environ,
        "ARQ_REDIS_URL": url_with_db(redis_server, WORKER_DB),
        "CRONLEASE_EXECUTED": str(record),
        "PYTHONPATH": str(worker_dir("arq")),
    }
    env.pop("ARQ_QUEUE", None)  # arq's default queue name
    command = [str(arq), "arqjobs.WorkerSettings"]
    started = Worker(launch(command, worker_dir("arq"), env, log), record, log)
    try:
        wait_ready(started, "Starting worker", "arq worker", START_TIMEOUT_S)
        yield started
    finally:
        stop_group(started.process)


@pytest.fixture
def fresh_worker(worker: Worker, redis: redis_py.Redis) -> Worker:
    """The module's worker with an empty record, on a flushed Redis."""
    worker.reset()
    return worker


def test_the_real_worker_runs_each_run_with_its_id_and_args(
    fresh_worker: Worker, redis_server: RedisServer
) -> None:
    client = redis_server.client(db=WORKER_DB)
    encoder = ArqEncoder(spec(db=WORKER_DB))
    now = time.time()
    runs = [
        make_run(fire_ts=FIRE_TS + offset, args=args, enqueued_at=now)
        for offset, args in enumerate([{"n": 1, "s": "ü"}, (1, "a", [2]), {}])
    ]
    for run in runs:
        for op in encoder.writes(run).ops:
            client.execute_command(*op)

    def all_ran() -> bool:
        assert fresh_worker.process.poll() is None, fresh_worker.log_tail()
        return len(fresh_worker.lines()) >= len(runs)

    try:
        wait_until(all_ran, 15, 0.05)
    except AssertionError:
        raise AssertionError(f"ran {fresh_worker.lines()}\n{fresh_worker.log_tail()}") from None
    by_id = {line["id"]: line for line in fresh_worker.lines()}
    assert sorted(by_id) == sorted(run.run_id for run in runs)
    for run in runs:
        line = by_id[run.run_id]
        # The run id carries the fire time; the score does too, on a first try.
        assert line["id"].endswith(f"@{run.fire_time}")
        assert line["score"] == run.fire_ts * 1000 and line["job_try"] == 1
        if isinstance(run.args, tuple):
            assert (line["args"], line["kwargs"]) == (list(run.args), {})
        else:
            assert (line["args"], line["kwargs"]) == ([], dict(run.args))
    # Finished as arq finishes its own jobs: off the queue, job key gone, result kept.
    wait_until(lambda: client.zcard(ARQ_QUEUE) == 0, 5, 0.05)
    assert not client.exists(f"arq:job:{runs[0].run_id}")
    assert client.exists(f"arq:result:{runs[0].run_id}")


def test_exactly_once_through_failover_into_a_real_arq_worker(
    fresh_worker: Worker, redis_server: RedisServer, tmp_path: Path
) -> None:
    queue_yaml = f'target: arq\nname: "{ARQ_QUEUE}"\ndb: {WORKER_DB}\nexpires: 1h\n'
    proof = prove_exactly_once_through_failover(
        redis_server, tmp_path, queue_yaml, "record", fresh_worker.executed
    )
    for line in fresh_worker.lines():
        fire_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(line["score"] // 1000))
        assert line["id"].endswith(f"@{fire_time}")
        assert line["kwargs"] == {"n": 1} and line["job_try"] == 1
    assert len(proof.executed) >= 12
