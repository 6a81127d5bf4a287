"""RQ target: the job hash is the one RQ's own enqueue writes (pickle and JSON serializers), and
a REAL `rq worker` (rq 2.12.0, from tests/targets/workers/rq) executes every run exactly once
through leader failovers (the worker itself: tests/targets/rqworker.py).

The pickle worker runs against the session Redis in db 0, the JSON one (`--serializer
rq.serializers.JSONSerializer`) in db 2, so db selection is proven by a real worker too. A
worker reads one serializer only, hence two worker processes; the JSON one starts only for the
tests that need it.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import redis as redis_py

from scheduler.core.config import parse_config
from scheduler.core.queues import QueueSpec
from scheduler.core.runs import DueFire, Lease, Outcome, Trigger
from scheduler.store.keys import Keys
from scheduler.store.scripts import Scripts
from scheduler.targets.encoding import WRITE_COMMANDS, Run
from scheduler.targets.registry import encoder_for
from scheduler.targets.router import RoutedTarget
from scheduler.targets.rq import RqEncoder, call_string, utcformat
from scheduler.targets.runid import decode_run_id
from tests.redis_server import RedisServer, wait_until
from tests.targets.harness import prove_exactly_once_through_failover
from tests.targets.rqworker import Worker, start_rq_worker, url_with_db
from tests.targets.workers import venv_bin

JSON_DB = 2
JOB = "rqjobs.record"
FIRE_TS = 1_795_312_800  # 2026-11-22T02:00:00Z


def spec(
    name: str = "jobs", db: int | None = None, queue: str = "jobs", **options: Any
) -> QueueSpec:
    full = {
        "serializer": "pickle",
        "timeout": 180,
        "result_ttl": 500,
        "failure_ttl": 365 * 86400,
        **options,
    }
    return QueueSpec(queue=queue, target="rq", name=name, db=db, options=MappingProxyType(full))


def make_run(
    schedule: str = "tick",
    fire_ts: int = FIRE_TS,
    args: Mapping[str, Any] | tuple[Any, ...] = MappingProxyType({"n": 1}),
    job: str = JOB,
    run_id: str | None = None,
) -> Run:
    fire_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fire_ts))
    return Run(
        run_id=run_id or f"{schedule}@{fire_time}",
        schedule=schedule,
        job=job,
        args=args,
        args_json=json.dumps(args if isinstance(args, tuple) else dict(args)),
        queue="jobs",
        fire_time=fire_time,
        fire_ts=fire_ts,
        enqueued_at=fire_ts + 0.004125,
        enqueued_at_text=time.strftime("%Y-%m-%dT%H:%M:%S.004Z", time.gmtime(fire_ts)),
        trigger="scheduled",
        token="0000000000000007",
        replica="r1",
    )


def hash_of(encoder: RqEncoder, run: Run) -> dict[str, Any]:
    [_, (command, _key, *pairs), _] = encoder.writes(run).ops
    assert command == "HSET"
    return dict(zip(pairs[::2], pairs[1::2], strict=True))


# --- the encoder alone ---------------------------------------------------------------------


def test_job_id_is_the_encoded_run_id_and_its_hash_is_the_guard() -> None:
    encoder = RqEncoder(spec("reports"))
    run = make_run()
    job_id = "tick_402026-11-22T02_3A00_3A00Z"
    assert encoder.job_id(run.run_id) == job_id
    assert decode_run_id(job_id) == run.run_id
    writes = encoder.writes(run)
    assert writes.guard == f"rq:job:{job_id}"
    sadd, hset, rpush = writes.ops
    assert sadd == ("SADD", "rq:queues", "rq:queue:reports")
    assert hset[:2] == ("HSET", f"rq:job:{job_id}")
    assert rpush == ("RPUSH", "rq:queue:reports", job_id)
    assert all(op[0] in WRITE_COMMANDS for op in writes.ops)
    # A manual run id (`#manual-...`) encodes too, and stays distinct from the scheduled one.
    manual = encoder.job_id(f"{run.run_id}#manual-ab12")
    assert manual == f"{job_id}_23manual-ab12" and decode_run_id(manual).endswith("#manual-ab12")


def test_lengths_are_the_queue_list() -> None:
    [length] = RqEncoder(spec("reports", db=3)).lengths()
    assert (length.key, length.kind) == ("rq:queue:reports", "list")


def test_the_hash_has_job_to_dicts_fields_and_the_run_in_meta() -> None:
    encoder = RqEncoder(spec(timeout=60, result_ttl=86400, failure_ttl=3600))
    run = make_run(args={"to": "a@b", "n": 2})
    fields = hash_of(encoder, run)
    assert list(fields) == [
        "created_at", "data", "success_callback_name", "failure_callback_name",
        "stopped_callback_name", "started_at", "ended_at", "last_heartbeat", "worker_name",
        "group_id", "origin", "description", "enqueued_at", "timeout", "result_ttl",
        "failure_ttl", "status", "meta",
    ]  # fmt: skip
    assert fields["created_at"] == fields["enqueued_at"] == "2026-11-22T02:00:00.004125Z"
    assert fields["status"] == "queued" and fields["origin"] == "jobs"
    assert (fields["timeout"], fields["result_ttl"], fields["failure_ttl"]) == (60, 86400, 3600)
    assert fields["description"] == "rqjobs.record(n=2, to='a@b')"
    assert pickle.loads(zlib.decompress(fields["data"])) == (JOB, None, (), {"to": "a@b", "n": 2})
    assert pickle.loads(fields["meta"]) == run.meta()
    assert pickle.loads(fields["meta"])["fire_time"] == "2026-11-22T02:00:00Z"


def test_a_tuple_is_positional_args_and_the_json_serializer_writes_json() -> None:
    encoder = RqEncoder(spec(serializer="json"))
    run = make_run(args=(1, "ü", [3]))
    fields = hash_of(encoder, run)
    assert zlib.decompress(fields["data"]) == b'["rqjobs.record", null, [1, "\\u00fc", [3]], {}]'
    assert json.loads(fields["meta"]) == run.meta()
    assert fields["description"] == "rqjobs.record(1, 'ü', [3])"


def test_description_cuts_long_reprs_as_rq_does() -> None:
    assert call_string("f", ("x" * 100,), {}) == f"f('{'x' * 74}...)"
    assert call_string("f", (), {"b": 1, "a": None}) == "f(a=None, b=1)"
    assert utcformat(0.5) == "1970-01-01T00:00:00.500000Z"


ENQUEUE = """
import json, sys
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
url, run = sys.argv[1], json.loads(sys.argv[2])
serializer = JSONSerializer if run["serializer"] == "json" else None
queue = Queue(run["name"], connection=Redis.from_url(url), serializer=serializer)
args, kwargs = (tuple(run["args"]), {}) if isinstance(run["args"], list) else ((), run["args"])
job = queue.create_job(
    run["job"], args=args, kwargs=kwargs, timeout=run["timeout"], result_ttl=run["result_ttl"],
    failure_ttl=run["failure_ttl"], job_id=run["job_id"], meta=run["meta"],
)
queue.enqueue_job(job, unique=True)
"""


@pytest.mark.parametrize(
    ("serializer", "args"),
    [("pickle", {"n": 1, "to": "ü"}), ("json", (1, "two", [3])), ("pickle", ()), ("json", {})],
)
def test_the_hash_is_the_one_rqs_own_enqueue_writes(
    redis: redis_py.Redis,
    redis_server: RedisServer,
    serializer: str,
    args: Mapping[str, Any] | tuple[Any, ...],
) -> None:
    """RQ's Queue.enqueue_job (unique), with the same id, call, meta and TTLs, writes the same
    keys and the same hash, byte for byte, but for the two timestamps (RQ's clock)."""
    python = venv_bin("rq", "python")
    encoder = RqEncoder(spec("mail", serializer=serializer, timeout=60, result_ttl=900))
    run = make_run(args=args)
    job_id = encoder.job_id(run.run_id)
    payload = {
        "job": run.job,
        "args": list(args) if isinstance(args, tuple) else dict(args),
        "name": "mail",
        "job_id": job_id,
        "meta": run.meta(),
        "serializer": serializer,
        "timeout": 60,
        "result_ttl": 900,
        "failure_ttl": 365 * 86400,
    }
    theirs_client = redis_server.client(db=4)
    subprocess.run(
        [str(python), "-c", ENQUEUE, url_with_db(redis_server, 4), json.dumps(payload)],
        check=True,
        timeout=60,
    )
    ours_client = redis_server.client(db=5)
    for op in encoder.writes(run).ops:
        ours_client.execute_command(*op)

    def everything(client: redis_py.Redis) -> dict[str, Any]:
        return {
            "keys": sorted(client.keys("*")),
            "queue": client.lrange("rq:queue:mail", 0, -1),
            "queues": client.smembers("rq:queues"),
            "ttl": client.ttl(f"rq:job:{job_id}"),
        }

    assert everything(ours_client) == everything(theirs_client)
    raw = redis_server.client(db=4, decode_responses=False)
    theirs = {k.decode(): v for k, v in raw.hgetall(f"rq:job:{job_id}").items()}
    ours_raw = redis_server.client(db=5, decode_responses=False)
    ours = {k.decode(): v for k, v in ours_raw.hgetall(f"rq:job:{job_id}").items()}
    for stamp in ("created_at", "enqueued_at"):
        time.strptime(theirs.pop(stamp).decode(), "%Y-%m-%dT%H:%M:%S.%fZ")
        assert ours.pop(stamp) == b"2026-11-22T02:00:00.004125Z"
    assert zlib.decompress(ours.pop("data")) == zlib.decompress(theirs.pop("data"))
    assert ours == theirs


def test_a_second_write_of_the_same_run_is_refused_by_the_job_hash(
    redis: redis_py.Redis,
) -> None:
    """Through the daemon's own router and script: once the job hash exists, the same fire is
    a duplicate (even with its cursor gone), and nothing is pushed twice."""
    config = parse_config(
        "queues:\n  jobs: {target: rq}\n"
        f"schedules:\n  tick: {{every: 1s, job: {JOB}, queue: jobs, args: {{n: 1}}}}\n"
    )
    keys = Keys("cronlease")
    scripts = Scripts(redis, keys)
    reply = scripts.acquire("r1", 5000, "gen-1")
    lease = Lease(f"{reply.token}:r1", reply.token, "r1")
    target = RoutedTarget(scripts, keys, config.queues, 0, make_encoder=encoder_for)
    [schedule] = config.schedules
    fire = [DueFire(schedule, FIRE_TS, Trigger.SCHEDULED)]
    assert target.send(target.prepare(lease, fire, FIRE_TS + 0.5)).outcomes == [Outcome.ENQUEUED]
    redis.hdel(keys.cursor, "tick")
    assert target.send(target.prepare(lease, fire, FIRE_TS + 0.6)).outcomes == [Outcome.DUPLICATE]
    assert redis.lrange("rq:queue:jobs", 0, -1) == ["tick_402026-11-22T02_3A00_3A00Z"]
    assert redis.smembers("rq:queues") == {"rq:queue:jobs"}


# --- the real workers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pickle_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    yield from start_rq_worker(redis_server, tmp_path_factory.mktemp("rq-pickle"), 0, None)


@pytest.fixture(scope="module")
def json_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    folder = tmp_path_factory.mktemp("rq-json")
    yield from start_rq_worker(redis_server, folder, JSON_DB, "rq.serializers.JSONSerializer")


@pytest.fixture(params=["pickle", "json"])
def worker(request: pytest.FixtureRequest, redis: redis_py.Redis) -> Worker:
    """The module's worker for one serializer, with an empty record, on a flushed Redis."""
    started: Worker = request.getfixturevalue(f"{request.param}_worker")
    started.reset()
    return started


def test_the_real_worker_runs_each_run_with_its_id_meta_and_args(
    worker: Worker, redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    serializer = request.node.callspec.params["worker"]
    db = JSON_DB if serializer == "json" else 0
    client = redis_server.client(db=db)
    encoder = RqEncoder(spec(db=db, serializer=serializer))
    runs = [
        make_run(fire_ts=FIRE_TS + offset, args=args)
        for offset, args in enumerate([{"n": 1, "s": "ü"}, (1, "a", [2]), {}])
    ]
    runs.append(make_run(run_id=f"{runs[0].run_id}#manual-x1"))
    for run in runs:
        for op in encoder.writes(run).ops:
            client.execute_command(*op)
    assert client.llen("rq:queue:jobs") <= len(runs)
    lines = worker.wait_for(len(runs))
    by_id = {decode_run_id(line["id"]): line for line in lines}
    assert sorted(by_id) == sorted(run.run_id for run in runs)
    for run in runs:
        line = by_id[run.run_id]
        assert line["fire_time"] == run.fire_time
        assert line["meta"] == run.meta()
        if isinstance(run.args, tuple):
            assert (line["args"], line["kwargs"]) == (list(run.args), {})
        else:
            assert (line["args"], line["kwargs"]) == ([], dict(run.args))
    wait_until(lambda: client.llen("rq:queue:jobs") == 0, 5, 0.05)
    # Finished as RQ finishes its own jobs: status and the result TTL it was given.
    job_key = f"rq:job:{encoder.job_id(runs[0].run_id)}"
    wait_until(lambda: client.hget(job_key, "status") == "finished", 5, 0.05)
    assert 0 < client.ttl(job_key) <= 500


@pytest.mark.parametrize(("serializer", "db"), [("pickle", 0), ("json", JSON_DB)])
def test_exactly_once_through_failover_into_a_real_rq_worker(
    serializer: str,
    db: int,
    request: pytest.FixtureRequest,
    redis: redis_py.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    worker: Worker = request.getfixturevalue(f"{serializer}_worker")
    worker.reset()
    queue_yaml = f"target: rq\nserializer: {serializer}\ndb: {db}\n"
    proof = prove_exactly_once_through_failover(
        redis_server, tmp_path, queue_yaml, JOB, worker.executed
    )
    # The job read its fire time from its meta, and it matches the run id.
    for line in worker.lines():
        assert decode_run_id(line["id"]).endswith(f"@{line['fire_time']}")
        assert line["kwargs"] == {"n": 1}
    assert len(proof.executed) >= 12
