"""Celery target: the message is the one Celery's own client writes, and a REAL `celery worker`
(celery 5.7.0, kombu 5.7.0, from tests/targets/workers/celery) executes every run exactly once
through leader failovers.

The worker runs against the session Redis in db 1 (Celery's common `/1`), so db selection is
proven with every real-worker test here; priorities too (a priority-5 queue writes the `\\x06\\x163`
list, which the worker must read).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import redis as redis_py

from scheduler.core.queues import QueueSpec
from scheduler.targets.celery import CeleryEncoder, priority_step, queue_key
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
START_TIMEOUT_S = 20.0


def spec(name: str = "jobs", db: int | None = None, **options: Any) -> QueueSpec:
    full = {"priority": 0, "global_keyprefix": "", **options}
    return QueueSpec(
        queue="jobs", target="celery", name=name, db=db, options=MappingProxyType(full)
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
        enqueued_at=fire_ts + 0.004,
        enqueued_at_text=time.strftime("%Y-%m-%dT%H:%M:%S.004Z", time.gmtime(fire_ts)),
        trigger="scheduled",
        token="0000000000000007",
        replica="r1",
    )


# --- the encoder alone ---------------------------------------------------------------------


def test_priority_maps_down_to_kombus_steps_and_zero_is_the_base_list() -> None:
    assert [priority_step(p) for p in range(10)] == [0, 0, 0, 3, 3, 3, 6, 6, 6, 9]
    assert queue_key("", "mail") == "mail"
    assert queue_key("", "mail", 5) == "mail\x06\x163"
    assert queue_key("", "mail", 9) == "mail\x06\x169"
    assert queue_key("app:", "mail", 6) == "app:mail\x06\x166"
    assert queue_key("app:", "mail", 0) == "app:mail"


def test_writes_one_lpush_onto_the_priority_list_and_has_no_guard() -> None:
    writes = CeleryEncoder(spec("mail", priority=4, global_keyprefix="p:")).writes(make_run())
    assert writes.guard is None
    [(command, key, payload)] = writes.ops
    assert (command, key) == ("LPUSH", "p:mail\x06\x163")
    assert command in WRITE_COMMANDS
    assert json.loads(payload)["properties"]["priority"] == 4


def test_lengths_are_all_four_lists_the_worker_reads() -> None:
    lengths = CeleryEncoder(spec("mail", priority=9, global_keyprefix="p:")).lengths()
    assert [(length.key, length.kind) for length in lengths] == [
        ("p:mail", "list"),
        ("p:mail\x06\x163", "list"),
        ("p:mail\x06\x166", "list"),
        ("p:mail\x06\x169", "list"),
    ]


def test_task_id_is_the_run_id_and_the_run_rides_in_headers() -> None:
    encoder = CeleryEncoder(spec())
    run = make_run()
    assert encoder.job_id(run.run_id) == run.run_id
    envelope = json.loads(encoder.writes(run).ops[0][2])
    headers, properties = envelope["headers"], envelope["properties"]
    assert headers["id"] == headers["root_id"] == properties["correlation_id"] == run.run_id
    assert headers["task"] == "record"
    assert headers["lang"] == "py" and headers["parent_id"] is None
    assert headers["retries"] == 0 and headers["timelimit"] == [None, None]
    assert headers["periodic_task_name"] == properties["periodic_task_name"] == "tick"
    for field, value in run.meta().items():
        assert headers[f"cronlease_{field}"] == value
    assert headers["cronlease_fire_time"] == "2026-11-22T02:00:00Z"
    assert properties["delivery_info"] == {"exchange": "", "routing_key": "jobs"}
    assert properties["delivery_mode"] == 2 and properties["body_encoding"] == "base64"


def test_a_mapping_is_kwargs_and_a_tuple_positional_args() -> None:
    encoder = CeleryEncoder(spec())

    def body_and_reprs(run: Run) -> tuple[Any, str, str]:
        envelope = json.loads(encoder.writes(run).ops[0][2])
        body = json.loads(base64.b64decode(envelope["body"]))
        return body, envelope["headers"]["argsrepr"], envelope["headers"]["kwargsrepr"]

    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    assert body_and_reprs(make_run(args={"to": "a@b", "n": 2})) == (
        [[], {"to": "a@b", "n": 2}, embed],
        "()",
        "{'to': 'a@b', 'n': 2}",
    )
    assert body_and_reprs(make_run(args=(1, "x", None))) == (
        [[1, "x", None], {}, embed],
        "(1, 'x', None)",
        "{}",
    )
    _, argsrepr, _ = body_and_reprs(make_run(args=("y" * 5000,)))
    assert len(argsrepr) == 1024 and argsrepr.endswith("...")


def test_delivery_tag_is_unique_per_run_and_a_pure_function_of_it() -> None:
    encoder = CeleryEncoder(spec())

    def tag(run: Run) -> str:
        return str(json.loads(encoder.writes(run).ops[0][2])["properties"]["delivery_tag"])

    assert tag(make_run()) == tag(make_run())
    assert tag(make_run()) != tag(make_run(fire_ts=1_795_312_801))
    assert tag(make_run()) != tag(make_run(schedule="other"))


SEND_TASK = """
import json, sys
from celery import Celery
url, prefix, priority, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
app = Celery("x", broker=url, broker_transport_options={"global_keyprefix": prefix})
args, kwargs = (tuple(run["args"]), {}) if isinstance(run["args"], list) else ((), run["args"])
app.send_task(
    run["job"], args=args, kwargs=kwargs, queue=run["name"], task_id=run["run_id"],
    priority=priority, headers=run["headers"], periodic_task_name=run["schedule"],
    reply_to="", ignore_result=None,
)
"""


@pytest.mark.parametrize(
    ("priority", "prefix", "args"),
    [(0, "", {"n": 1, "to": "ü"}), (5, "app:", (1, "two", [3])), (9, "", {})],
)
def test_the_message_is_the_one_celerys_own_client_writes(
    redis: redis_py.Redis,
    redis_server: RedisServer,
    priority: int,
    prefix: str,
    args: Mapping[str, Any] | tuple[Any, ...],
) -> None:
    """Celery's send_task, with the same id, args, priority, key prefix and headers, LPUSHes the
    same envelope onto the same key; only kombu's random parts differ (delivery_tag, origin)."""
    python = venv_bin("celery", "python")
    encoder = CeleryEncoder(spec("mail", priority=priority, global_keyprefix=prefix))
    run = make_run(args=args)
    [(_, key, ours_text)] = encoder.writes(run).ops
    ours = json.loads(ours_text)
    custom = {"periodic_task_name": run.schedule}
    custom.update((k, v) for k, v in ours["headers"].items() if k.startswith("cronlease_"))
    payload = {
        "job": run.job,
        "args": list(args) if isinstance(args, tuple) else dict(args),
        "name": "mail",
        "run_id": run.run_id,
        "schedule": run.schedule,
        "headers": custom,
    }
    subprocess.run(
        [
            str(python),
            "-c",
            SEND_TASK,
            url_with_db(redis_server, 2),
            prefix,
            str(priority),
            json.dumps(payload),
        ],
        check=True,
        timeout=60,
    )
    theirs_client = redis_server.client(db=2)
    lists = [k for k in theirs_client.keys("*") if theirs_client.type(k) == "list"]
    assert lists == [key]
    [theirs_text] = theirs_client.lrange(key, 0, -1)
    theirs = json.loads(theirs_text)
    assert _body(theirs) == _body(ours)
    # kombu's random parts: the origin (gen<pid>@<host>), reply_to (the client's thread oid,
    # for the rpc backend) and delivery_tag (a uuid4).
    for part in ("origin",):
        theirs["headers"].pop(part), ours["headers"].pop(part)
    for part in ("reply_to", "delivery_tag"):
        theirs["properties"].pop(part), ours["properties"].pop(part)
    theirs.pop("body"), ours.pop("body")
    assert theirs == ours
    # Same order of headers too (what a reader that prints them shows).
    assert list(theirs["headers"]) == list(ours["headers"])


def _body(envelope: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(envelope["body"]))


# --- the real worker -----------------------------------------------------------------------


class Worker(RecordedWorker):
    def lines(self) -> list[list[str]]:
        return [line.split("\t") for line in self.raw_lines()]

    def executed(self) -> list[str]:
        return [fields[0] for fields in self.lines()]


@pytest.fixture(scope="module")
def worker(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    celery = venv_bin("celery", "celery")
    folder = tmp_path_factory.mktemp("celery-worker")
    record, log = folder / "executed.tsv", folder / "worker.log"
    env = {
        **os.environ,
        "CELERY_BROKER_URL": url_with_db(redis_server, WORKER_DB),
        "CRONLEASE_RECORD": str(record),
        "PYTHONPATH": str(worker_dir("celery")),
    }
    command = [
        str(celery), "-A", "tasks", "worker", "-Q", "jobs", "-P", "solo", "-c", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
    ]  # fmt: skip
    started = Worker(launch(command, worker_dir("celery"), env, log), record, log)
    try:
        wait_ready(started, " ready.", "celery worker", START_TIMEOUT_S)
        yield started
    finally:
        stop_group(started.process)


@pytest.fixture
def fresh_worker(worker: Worker, redis: redis_py.Redis) -> Worker:
    """The module's worker with an empty record, on a flushed Redis."""
    worker.reset()
    return worker


def test_the_real_worker_runs_each_priority_with_its_id_and_fire_time(
    fresh_worker: Worker, redis_server: RedisServer
) -> None:
    client = redis_server.client(db=WORKER_DB)
    runs = []
    for offset, (priority, args) in enumerate([(0, {"n": 1}), (3, (1, "a")), (5, {}), (9, ("z",))]):
        run = make_run(fire_ts=1_795_312_800 + offset, args=args)
        for op in CeleryEncoder(spec(db=WORKER_DB, priority=priority)).writes(run).ops:
            client.execute_command(*op)
        runs.append(run)

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
        _, fire_time, args, kwargs, routing_key = by_id[run.run_id]
        assert fire_time == run.fire_time
        if isinstance(run.args, tuple):
            assert (args, kwargs) == (repr(run.args), "{}")
        else:
            assert (args, kwargs) == ("()", repr(dict(run.args)))
        assert routing_key == "jobs"
    # Acknowledged: nothing left unacked, nothing left waiting.
    wait_until(lambda: client.hlen("unacked") == 0, 5, 0.05)
    assert all(client.llen(length.key) == 0 for length in CeleryEncoder(spec()).lengths())


def test_exactly_once_through_failover_into_a_real_celery_worker(
    fresh_worker: Worker, redis_server: RedisServer, tmp_path: Path
) -> None:
    queue_yaml = textwrap.dedent(
        f"""
        target: celery
        db: {WORKER_DB}
        priority: 5
        """
    )
    proof = prove_exactly_once_through_failover(
        redis_server, tmp_path, queue_yaml, "record", fresh_worker.executed
    )
    # The worker read each fire time from the run's own header, and it matches the run id.
    for task_id, fire_time, *_ in fresh_worker.lines():
        assert task_id.endswith(f"@{fire_time}")
    assert len(proof.executed) >= 12
