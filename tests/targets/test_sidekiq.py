"""Sidekiq target: the job JSON as Sidekiq's own client pushes it, executed by the REAL `sidekiq`
(Debian's ruby-sidekiq 6.4) through cronlease failovers, in another db and a namespace too."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import redis as redis_py

from scheduler.core.queues import OPTIONS, QueueSpec
from scheduler.targets.encoding import WRITE_COMMANDS, Run
from scheduler.targets.registry import encoder_for
from scheduler.targets.sidekiq import SidekiqEncoder
from tests.redis_server import RedisServer, wait_until
from tests.targets.harness import SCHEDULES, prove_exactly_once_through_failover
from tests.targets.workers import install_hint, system_program, worker_dir

WORKER_CLASS = "TickWorker"  # tests/targets/workers/sidekiq/worker.rb


def spec(name: str = "jobs", db: int | None = None, **options: Any) -> QueueSpec:
    defaults = {key: default for key, (_, default) in OPTIONS["sidekiq"].items()}
    return QueueSpec("jobs", "sidekiq", name, db, MappingProxyType({**defaults, **options}))


def run(
    schedule: str = "nightly",
    fire_ts: int = 1795312800,
    args: Any = MappingProxyType({"format": "pdf"}),
    fire_time: str = "2026-11-22T02:00:00Z",
) -> Run:
    return Run(
        run_id=f"{schedule}@{fire_time}",
        schedule=schedule,
        job=WORKER_CLASS,
        args=args,
        args_json=json.dumps(args if isinstance(args, tuple) else dict(args)),
        queue="jobs",
        fire_time=fire_time,
        fire_ts=fire_ts,
        enqueued_at=fire_ts + 0.004,
        enqueued_at_text=fire_time.replace("Z", ".004Z"),
        trigger="scheduled",
        token="0000000000000007",
        replica="r1",
    )


def job_of(encoder: SidekiqEncoder, r: Run) -> dict[str, Any]:
    (_sadd, lpush) = encoder.writes(r).ops
    parsed: dict[str, Any] = json.loads(lpush[2])
    return parsed


# --- the encoder -----------------------------------------------------------------------------


def test_the_job_json_has_sidekiqs_fields_in_its_order_and_the_run_in_cronlease() -> None:
    r = run()
    job = job_of(SidekiqEncoder(spec()), r)
    assert list(job) == [
        "retry", "queue", "class", "args", "jid", "created_at", "enqueued_at", "cronlease"
    ]  # fmt: skip
    assert job["class"] == WORKER_CLASS
    assert job["queue"] == "jobs"
    assert job["jid"] == r.run_id == "nightly@2026-11-22T02:00:00Z"
    assert job["retry"] is True
    assert job["created_at"] == job["enqueued_at"] == 1795312800.004
    assert isinstance(job["created_at"], float)
    assert job["cronlease"] == r.meta()


def test_ops_are_sidekiqs_atomic_push_and_there_is_no_guard() -> None:
    writes = SidekiqEncoder(spec(name="critical")).writes(run())
    assert [op[:2] for op in writes.ops] == [("SADD", "queues"), ("LPUSH", "queue:critical")]
    assert writes.ops[0][2] == "critical"
    assert all(op[0] in WRITE_COMMANDS for op in writes.ops)
    assert writes.guard is None  # Sidekiq has no job key: the cursor alone dedups


def test_args_a_list_is_positional_a_mapping_is_one_hash_and_none_is_no_argument() -> None:
    encoder = SidekiqEncoder(spec())
    assert job_of(encoder, run(args=(1, "two", [3])))["args"] == [1, "two", [3]]
    assert job_of(encoder, run(args=MappingProxyType({"a": 1})))["args"] == [{"a": 1}]
    assert job_of(encoder, run(args=MappingProxyType({})))["args"] == []


def test_options_retry_milliseconds_and_namespace() -> None:
    job = job_of(SidekiqEncoder(spec(retry=3, timestamps="milliseconds")), run())
    assert job["retry"] == 3
    assert job["created_at"] == job["enqueued_at"] == 1795312800004
    assert isinstance(job["created_at"], int)  # Sidekiq 8: integer epoch milliseconds
    assert job_of(SidekiqEncoder(spec(retry=False)), run())["retry"] is False
    encoder = SidekiqEncoder(spec(namespace="app"))
    assert [op[1] for op in encoder.writes(run()).ops] == ["app:queues", "app:queue:jobs"]
    assert [(n.key, n.kind) for n in encoder.lengths()] == [("app:queue:jobs", "list")]
    assert [(n.key, n.kind) for n in SidekiqEncoder(spec()).lengths()] == [("queue:jobs", "list")]


def test_the_job_id_is_the_run_id_and_the_registry_finds_the_encoder() -> None:
    encoder = encoder_for(spec())
    assert isinstance(encoder, SidekiqEncoder)
    manual = "a.b@2026-11-22T02:00:00Z#manual-x1"
    assert encoder.job_id(manual) == manual


def test_same_keys_and_types_as_sidekiqs_own_client_writes(
    redis_server: RedisServer, redis: redis_py.Redis
) -> None:
    """Sidekiq::Client.push (the real Ruby client) next to ours: same keys, same JSON fields
    with the same types (ours adds `cronlease`)."""
    ruby = system_program("sidekiq", "ruby")
    system_program("sidekiq", "sidekiq")
    push = (
        'require "sidekiq"; Sidekiq.configure_client { |c| c.redis = {url: ENV["REDIS_URL"]} }; '
        'Sidekiq::Client.push("class" => "TickWorker", "queue" => "jobs", "args" => [{"n" => 1}])'
    )
    env = {**os.environ, "REDIS_URL": redis_server.url.replace("/0", "/3")}
    subprocess.run([ruby, "-e", push], env=env, check=True, capture_output=True, timeout=30)
    theirs_db = redis_server.client(db=3)
    theirs = json.loads(theirs_db.lindex("queue:jobs", 0) or "{}")
    ours = job_of(SidekiqEncoder(spec()), run(args=MappingProxyType({"n": 1})))
    assert sorted(theirs_db.keys()) == ["queue:jobs", "queues"]
    assert theirs_db.smembers("queues") == {"jobs"}
    assert list(ours) == [*theirs, "cronlease"]
    assert {k: type(v) for k, v in theirs.items()} == {
        k: type(v) for k, v in ours.items() if k != "cronlease"
    }
    assert theirs["args"] == ours["args"] and theirs["class"] == ours["class"]


# --- the real worker -------------------------------------------------------------------------


@dataclass
class SidekiqWorker:
    process: subprocess.Popen[bytes]
    executed_path: Path
    log_path: Path

    def executed(self) -> list[dict[str, Any]]:
        if not self.executed_path.exists():
            return []
        return [json.loads(line) for line in self.executed_path.read_text().splitlines()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def start_sidekiq(
    folder: Path, url: str, queue: str, namespace: str = ""
) -> Iterator[SidekiqWorker]:
    program = system_program("sidekiq", "sidekiq")
    folder.mkdir(parents=True, exist_ok=True)
    ready = folder / "ready"
    env = {
        **os.environ,
        "REDIS_URL": url,
        "CRONLEASE_EXECUTED": str(folder / "executed.jsonl"),
        "CRONLEASE_READY": str(ready),
    }
    if namespace:
        env["SIDEKIQ_NAMESPACE"] = namespace
    log_path = folder / "sidekiq.log"
    script = worker_dir("sidekiq") / "worker.rb"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [program, "-r", str(script), "-q", queue, "-c", "1", "-t", "5"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    worker = SidekiqWorker(process, folder / "executed.jsonl", log_path)
    try:
        wait_until(lambda: ready.exists() or process.poll() is not None, 30, 0.05)
        assert process.poll() is None, f"sidekiq exited at start:\n{worker.log()}"
        yield worker
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def sidekiq(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SidekiqWorker]:
    """One real Sidekiq for the module, on the session Redis, db 0, queue `jobs`."""
    with start_sidekiq(tmp_path_factory.mktemp("sidekiq"), redis_server.url, "jobs") as worker:
        yield worker


def failures(client: redis_py.Redis, worker: SidekiqWorker, prefix: str = "") -> list[str]:
    """What went wrong in Sidekiq's eyes, at once (its stat counters wait for a heartbeat): a
    job that raised is logged `fail` (job_logger.rb) and ZADDed to `retry` or `dead`."""
    wrong = [line for line in worker.log().splitlines() if "INFO: fail" in line]
    wrong += [f"{key}: {n}" for key in ("retry", "dead") if (n := client.zcard(prefix + key))]
    return wrong


def test_real_sidekiq_executes_every_fire_exactly_once_through_leader_kills(
    redis_server: RedisServer, redis: redis_py.Redis, tmp_path: Path, sidekiq: SidekiqWorker
) -> None:
    def mine() -> list[dict[str, Any]]:
        return [e for e in sidekiq.executed() if e["jid"].partition("@")[0] in SCHEDULES]

    proof = prove_exactly_once_through_failover(
        redis_server,
        tmp_path,
        "target: sidekiq",
        WORKER_CLASS,
        lambda: [e["jid"] for e in mine()],
        args_yaml="{n: 1}",
    )
    assert len(proof.executed) >= 4 * len(SCHEDULES)
    for entry in mine():
        # Inside the job: `jid` is the run id, the middleware's `cronlease` hash its fields.
        assert entry["cronlease"]["run_id"] == entry["jid"]
        assert entry["fire_time"] == entry["jid"].partition("@")[2]
        assert entry["args"] == [{"n": 1}]
    assert not failures(redis, sidekiq)


def test_real_sidekiq_with_a_namespace_in_another_db(
    redis_server: RedisServer, redis: redis_py.Redis, tmp_path: Path
) -> None:
    """`db: 2` and `namespace: app` (Sidekiq 6 with redis-namespace): the keys the ops name are
    the ones that Sidekiq, configured so, reads."""
    ruby = system_program("sidekiq", "ruby")
    if subprocess.run([ruby, "-e", 'require "redis/namespace"'], capture_output=True).returncode:
        pytest.skip(f"ruby-redis-namespace is not installed: {install_hint('sidekiq')}")
    url = redis_server.url.replace("/0", "/2")
    encoder = SidekiqEncoder(spec(name="batch", db=2, namespace="app"))
    runs = [run("ns", 1795312800 + i, (i, "x"), f"2026-11-22T02:00:0{i}Z") for i in range(3)]
    target = redis_server.client(db=2)
    for r in runs:
        for op in encoder.writes(r).ops:
            target.execute_command(*op)
    assert sorted(target.keys()) == ["app:queue:batch", "app:queues"]
    with start_sidekiq(tmp_path / "ns", url, "batch", namespace="app") as sk:
        wait_until(lambda: len(sk.executed()) >= len(runs), 20, 0.05)
        executed = sk.executed()
        assert [e["jid"] for e in executed] == [r.run_id for r in runs]  # FIFO
        assert [e["args"] for e in executed] == [[0, "x"], [1, "x"], [2, "x"]]
        assert not failures(target, sk, "app:")
