"""BullMQ target: the standard job `Queue.add` stores, executed by REAL BullMQ 5 and 6 Workers
(Node, npm) through cronlease failovers; the paused-queue branch the enqueue script lacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import redis as redis_py

from scheduler.core.config import parse_config
from scheduler.core.queues import OPTIONS, QueueSpec
from scheduler.core.runs import DueFire, Lease, Outcome, Trigger
from scheduler.core.timefmt import rfc3339_utc
from scheduler.store.keys import Keys
from scheduler.store.scripts import Scripts
from scheduler.targets.bullmq import BullmqEncoder
from scheduler.targets.encoding import WRITE_COMMANDS, Run
from scheduler.targets.registry import encoder_for
from scheduler.targets.router import RoutedTarget
from scheduler.targets.runid import decode_run_id
from tests.redis_server import RedisServer, wait_until
from tests.targets.harness import SCHEDULES, prove_exactly_once_through_failover
from tests.targets.workers import node_modules, worker_dir

MAJORS = ("5", "6")
# The module's two Workers: BullMQ 5 on the default prefix, BullMQ 6 on a prefix of its own.
QUEUES = {"5": ("bull", "jobs5"), "6": ("app", "jobs6")}


def spec(name: str = "jobs", db: int | None = None, **options: Any) -> QueueSpec:
    defaults = {key: default for key, (_, default) in OPTIONS["bullmq"].items()}
    return QueueSpec("jobs", "bullmq", name, db, MappingProxyType({**defaults, **options}))


def run(
    schedule: str = "nightly",
    fire_ts: int = 1795312800,
    args: Any = MappingProxyType({"format": "pdf"}),
    fire_time: str = "2026-11-22T02:00:00Z",
) -> Run:
    return Run(
        run_id=f"{schedule}@{fire_time}",
        schedule=schedule,
        job="report",
        args=args,
        args_json=json.dumps(dict(args)),
        queue="jobs",
        fire_time=fire_time,
        fire_ts=fire_ts,
        enqueued_at=fire_ts + 0.004,
        enqueued_at_text=fire_time.replace("Z", ".004Z"),
        trigger="scheduled",
        token="0000000000000007",
        replica="r1",
    )


def apply(client: redis_py.Redis, ops: tuple[tuple[Any, ...], ...]) -> None:
    for op in ops:
        client.execute_command(*op)


def node(script: str, *args: str) -> str:
    """Node with the worker folder's modules (bullmq5, bullmq6), e.g. to call Queue.add."""
    node_modules("bullmq")
    program = shutil.which("node")
    if program is None:
        pytest.skip("node is not installed")
    done = subprocess.run(
        [program, "-e", script, *args],
        cwd=worker_dir("bullmq"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# Queue.add / pause / resume through the real library: argv major, url, prefix, queue, action.
QUEUE_JS = """
const [major, url, prefix, name, action, jobId, data] = process.argv.slice(1);
const { Queue } = require(`bullmq${major}`);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port), db: Number(u.pathname.slice(1)) };
(async () => {
  const queue = new Queue(name, { connection, prefix });
  if (action === "add") await queue.add("report", JSON.parse(data), { jobId });
  if (action === "pause") await queue.pause();
  if (action === "resume") await queue.resume();
  await queue.close();
})().catch((e) => { console.error(e); process.exit(1); });
"""


def queue_js(url: str, major: str, action: str, *args: str) -> None:
    prefix, name = QUEUES[major]
    node(QUEUE_JS, major, url, prefix, name, action, *args)


# --- the encoder -----------------------------------------------------------------------------


def test_the_job_hash_is_a_standard_add_with_the_encoded_run_id() -> None:
    r = run()
    encoder = BullmqEncoder(spec())
    writes = encoder.writes(r)
    job_id = "nightly_402026-11-22T02_3A00_3A00Z"
    assert encoder.job_id(r.run_id) == job_id and decode_run_id(job_id) == r.run_id
    assert writes.guard == f"bull:jobs:{job_id}"  # BullMQ's own duplicate rule: EXISTS
    incr, hset, added, lpush, marker, waiting = writes.ops
    assert incr == ("INCR", "bull:jobs:id")
    fields = dict(zip(hset[2::2], hset[3::2], strict=True))
    assert hset[:2] == ("HSET", f"bull:jobs:{job_id}")
    assert fields == {
        "name": "report",
        "data": fields["data"],
        "opts": json.dumps({"jobId": job_id, "attempts": 0}, separators=(",", ":")),
        "timestamp": 1795312800004,
        "delay": 0,
        "priority": 0,
    }
    assert json.loads(fields["data"]) == {"format": "pdf", "cronlease": r.meta()}
    assert added == ("XADD", "bull:jobs:events", "*", "event", "added", "jobId", job_id,
                     "name", "report")  # fmt: skip
    assert lpush == ("LPUSH", "bull:jobs:wait", job_id)
    assert marker == ("ZADD", "bull:jobs:marker", 0, "0")
    assert waiting == ("XADD", "bull:jobs:events", "MAXLEN", "~", 10000, "*", "event",
                       "waiting", "jobId", job_id)  # fmt: skip
    assert all(op[0] in WRITE_COMMANDS for op in writes.ops)


def test_prefix_name_max_len_events_lengths_and_the_paused_branch() -> None:
    encoder = BullmqEncoder(spec(name="mail", prefix="app", max_len_events=500))
    ops = encoder.writes(run()).ops
    assert {op[1] for op in ops} == {
        "app:mail:id", "app:mail:nightly_402026-11-22T02_3A00_3A00Z", "app:mail:events",
        "app:mail:wait", "app:mail:marker",
    }  # fmt: skip
    assert ops[-1][4] == 500
    assert [(n.key, n.kind) for n in encoder.lengths()] == [
        ("app:mail:wait", "list"),
        ("app:mail:paused", "list"),
    ]
    paused = encoder.paused_writes(run())
    assert [op[:2] for op in paused.ops] == [
        ("INCR", "app:mail:id"),
        ("HSET", "app:mail:nightly_402026-11-22T02_3A00_3A00Z"),
        ("XADD", "app:mail:events"),
        ("LPUSH", "app:mail:paused"),  # and no marker: BullMQ 5's paused branch
        ("XADD", "app:mail:events"),
    ]
    assert paused.guard == encoder.writes(run()).guard
    assert isinstance(encoder_for(spec()), BullmqEncoder)


@pytest.mark.parametrize("major", MAJORS)
def test_same_keys_and_fields_as_bullmqs_own_queue_add(
    major: str, redis_server: RedisServer, redis: redis_py.Redis
) -> None:
    """Queue.add(name, data, {jobId}) of the real library next to our writes, in db 4."""
    url = redis_server.url.replace("/0", "/4")
    client = redis_server.client(db=4)
    prefix, name = QUEUES[major]
    theirs_id, r = "their-job", run()
    queue_js(url, major, "add", theirs_id, json.dumps({"format": "pdf"}))
    theirs_keys = {k: client.type(k) for k in client.scan_iter()}
    theirs_hash = client.hgetall(f"{prefix}:{name}:{theirs_id}")
    theirs_events = [fields for _, fields in client.xrange(f"{prefix}:{name}:events")]
    theirs_wait, theirs_marker = (
        client.lrange(f"{prefix}:{name}:wait", 0, -1),
        client.zrange(f"{prefix}:{name}:marker", 0, -1, withscores=True),
    )
    client.flushdb()
    encoder = BullmqEncoder(spec(name=name, prefix=prefix))
    ours_id = encoder.job_id(r.run_id)
    apply(client, encoder.writes(r).ops)
    ours_keys = {k: client.type(k) for k in client.scan_iter()}
    ours_hash = client.hgetall(f"{prefix}:{name}:{ours_id}")
    ours_events = [fields for _, fields in client.xrange(f"{prefix}:{name}:events")]
    # The Queue's constructor writes its meta hash (opts.maxLenEvents, version): not the add's.
    assert {k.replace(theirs_id, ours_id): t for k, t in theirs_keys.items()} == {
        **ours_keys,
        f"{prefix}:{name}:meta": "hash",
    }
    assert sorted(theirs_hash) == sorted(ours_hash)
    assert json.loads(theirs_hash["opts"]) == {**json.loads(ours_hash["opts"]), "jobId": theirs_id}
    data = json.loads(ours_hash["data"])
    assert data.pop("cronlease") == r.meta()
    assert json.loads(theirs_hash["data"]) == data
    for field in ("name", "delay", "priority"):
        assert theirs_hash[field] == ours_hash[field]
    assert theirs_events == [
        {k: v.replace(ours_id, theirs_id) for k, v in e.items()} for e in ours_events
    ]
    assert theirs_wait == [theirs_id] and client.lrange(f"{prefix}:{name}:wait", 0, -1) == [ours_id]
    assert theirs_marker == client.zrange(f"{prefix}:{name}:marker", 0, -1, withscores=True)


# --- the real Workers ------------------------------------------------------------------------


@dataclass
class BullmqWorker:
    major: str
    process: subprocess.Popen[bytes]
    executed_path: Path
    log_path: Path

    def executed(self) -> list[dict[str, Any]]:
        if not self.executed_path.exists():
            return []
        return [json.loads(line) for line in self.executed_path.read_text().splitlines()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def errors(self) -> list[str]:
        return [line for line in self.log().splitlines() if line.startswith(("FAILED", "ERROR"))]


@contextmanager
def start_worker(folder: Path, url: str, major: str) -> Iterator[BullmqWorker]:
    node_modules("bullmq")
    program = shutil.which("node")
    if program is None:
        pytest.skip("node is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    prefix, name = QUEUES[major]
    env = {
        **os.environ,
        "BULLMQ_MAJOR": major,
        "BULLMQ_QUEUE": name,
        "BULLMQ_PREFIX": prefix,
        "REDIS_URL": url,
        "CRONLEASE_EXECUTED": str(folder / "executed.jsonl"),
    }
    log_path = folder / "worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [program, str(worker_dir("bullmq") / "worker.js")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    worker = BullmqWorker(major, process, folder / "executed.jsonl", log_path)
    try:
        wait_until(lambda: "ready" in worker.log() or process.poll() is not None, 30, 0.05)
        assert process.poll() is None, f"the BullMQ {major} worker exited:\n{worker.log()}"
        yield worker
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def workers(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, BullmqWorker]]:
    """One real Worker per major for the module, on the session Redis, db 0."""
    folder = tmp_path_factory.mktemp("bullmq")
    with (
        start_worker(folder / "v5", redis_server.url, "5") as v5,
        start_worker(folder / "v6", redis_server.url, "6") as v6,
    ):
        yield {"5": v5, "6": v6}


def assert_completed(client: redis_py.Redis, worker: BullmqWorker, ids: list[str]) -> None:
    """Each job moved to `completed` with the Worker's return value; none failed."""
    prefix, name = QUEUES[worker.major]

    def all_completed() -> bool:
        return all(client.zscore(f"{prefix}:{name}:completed", i) is not None for i in ids)

    wait_until(all_completed, 10, 0.02)
    for job_id in ids:
        assert client.hget(f"{prefix}:{name}:{job_id}", "returnvalue") == '"done"'
    assert client.zcard(f"{prefix}:{name}:failed") == 0
    assert not worker.errors(), worker.log()[-3000:]


@pytest.mark.parametrize("major", MAJORS)
def test_real_bullmq_worker_executes_every_fire_exactly_once_through_leader_kills(
    major: str,
    redis_server: RedisServer,
    redis: redis_py.Redis,
    tmp_path: Path,
    workers: dict[str, BullmqWorker],
) -> None:
    worker = workers[major]
    prefix, name = QUEUES[major]

    def mine() -> list[dict[str, Any]]:
        return [e for e in worker.executed() if e["id"].partition("_40")[0] in SCHEDULES]

    proof = prove_exactly_once_through_failover(
        redis_server,
        tmp_path,
        f"target: bullmq\nname: {name}\nprefix: {prefix}",
        "report",
        lambda: [decode_run_id(e["id"]) for e in mine()],
        args_yaml="{n: 1}",
    )
    assert len(proof.executed) >= 4 * len(SCHEDULES)
    for entry in mine():
        # Inside the job: job.id is the encoded run id, job.data.cronlease the run's fields.
        run_id = decode_run_id(entry["id"])
        assert entry["data"]["cronlease"]["run_id"] == run_id
        assert entry["fire_time"] == run_id.partition("@")[2]
        assert entry["data"]["n"] == 1 and entry["name"] == "report"
    assert_completed(redis, worker, [e["id"] for e in mine()])


@pytest.mark.parametrize("major", MAJORS)
def test_a_paused_queue_gets_its_runs_on_resume_through_the_paused_branch(
    major: str, redis_server: RedisServer, redis: redis_py.Redis, workers: dict[str, BullmqWorker]
) -> None:
    """Runs the enqueue script writes while `meta.paused` is set (it chooses the paused branch
    itself, by HEXISTS meta paused) run on resume, in BullMQ 5 (from its paused list) and in
    BullMQ 6 (which moves that list onto wait)."""
    worker = workers[major]
    prefix, name = QUEUES[major]
    encoder = BullmqEncoder(spec(name=name, prefix=prefix))
    queue_js(redis_server.url, major, "pause")
    assert redis.hexists(f"{prefix}:{name}:meta", "paused")
    config = parse_config(
        f"queues:\n  jobs: {{target: bullmq, name: {name}, prefix: {prefix}}}\n"
        f"schedules:\n  paused{major}: {{every: 1s, job: report, queue: jobs}}\n"
    )
    scripts = Scripts(redis, Keys("cronlease"))
    token = scripts.acquire("r1", 5000, "gen").token
    lease = Lease(f"{token}:r1", token, "r1")
    target = RoutedTarget(scripts, Keys("cronlease"), config.queues)
    [schedule] = config.schedules
    fires = [DueFire(schedule, 1795312800 + i, Trigger.SCHEDULED) for i in (0, 1)]
    written = target.send(target.prepare(lease, fires, 1795312801.0))
    assert written.outcomes == [Outcome.ENQUEUED] * 2
    assert redis.llen(f"{prefix}:{name}:paused") == 2 and not redis.exists(f"{prefix}:{name}:wait")
    runs = [run(f"paused{major}", f.fire_ts, fire_time=rfc3339_utc(f.fire_ts)) for f in fires]
    ids = [encoder.job_id(r.run_id) for r in runs]
    queue_js(redis_server.url, major, "resume")
    wait_until(lambda: {e["id"] for e in worker.executed()} >= set(ids), 15, 0.02)
    assert_completed(redis, worker, ids)
