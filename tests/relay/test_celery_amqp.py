"""Celery on RabbitMQ: the deliverer publishes the message Celery's own client publishes, and a
REAL `celery worker` (celery 5.7.0, kombu 5.7.0 from tests/targets/workers/celery, py-amqp
transport) with broker amqp://guest:guest@127.0.0.1:5672// executes every run: directly, and
through the relay with three replicas, two leader kills and `rabbitmqctl stop_app` / `start_app`
(duplicates no more than the relays counted).

The worker's app is this module's WORKER_APP (written to a temporary folder): its task records
the id, the fire time header, args, kwargs, the routing key and the broker's `redelivered` flag
(a message the worker had received, unacknowledged, when the broker went away: RabbitMQ's own
redelivery to a consumer, not a second publish).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import redis as redis_py

from scheduler.core.queues import QueueSpec
from scheduler.targets.relay.base import Delivered
from scheduler.targets.relay.celery_amqp import CeleryAmqpDeliverer, encoding_run
from tests.redis_server import RedisServer, wait_until
from tests.relay.test_rabbitmq import (
    URL,
    admin_connection,
    broker_app,  # noqa: F401  (a fixture)
    drain,
    outbox_runs,
    rabbitmqctl,
    relay_counted,
    unique,
)
from tests.targets.harness import prove_exactly_once_through_failover
from tests.targets.workers import stop_group, venv_bin

START_TIMEOUT_S = 30.0
PASSWORD_VARIABLE = "CRONLEASE_TEST_RABBIT_PASSWORD"

WORKER_APP = """
import os
from celery import Celery

app = Celery("amqptasks", broker=os.environ["CELERY_BROKER_URL"])
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_enable_remote_control=False,  # no pidbox queue left behind
    task_ignore_result=True,
)


@app.task(bind=True, name="record")
def record(self, *args, **kwargs):
    info = self.request.delivery_info or {}
    line = "\\t".join([
        self.request.id, self.request.cronlease_fire_time, repr(args), repr(kwargs),
        str(info.get("routing_key")), str(bool(info.get("redelivered"))),
    ])
    with open(os.environ["CRONLEASE_RECORD"], "a") as record_file:
        record_file.write(line + "\\n")
"""


def spec(name: str, priority: int = 0, **options: Any) -> QueueSpec:
    return QueueSpec(
        queue="jobs",
        target="celery",
        name=name,
        options=MappingProxyType(
            {"url": URL, "priority": priority, "global_keyprefix": "", **options}
        ),
    )


# --- the message -------------------------------------------------------------------------------

SEND_TASK = """
import json, sys
from celery import Celery
url, run = sys.argv[1], json.loads(sys.argv[2])
app = Celery("x", broker=url)
args, kwargs = (tuple(run["args"]), {}) if isinstance(run["args"], list) else ((), run["args"])
app.send_task(
    run["job"], args=args, kwargs=kwargs, queue=run["name"], task_id=run["run_id"],
    priority=run["priority"], headers=run["headers"], periodic_task_name=run["schedule"],
    ignore_result=None,
)
"""


@pytest.mark.parametrize(
    ("priority", "args"), [(0, '{"n": 1, "to": "ü"}'), (5, '[1, "two", [3]]'), (9, "{}")]
)
def test_the_message_is_the_one_celerys_own_client_publishes(priority: int, args: str) -> None:
    """send_task with the same id, args, priority and headers, onto the same RabbitMQ queue:
    the same properties, application headers (in order) and body; only kombu's own random parts
    differ (origin, and reply_to: the client's thread oid for the rpc backend)."""
    python = venv_bin("celery", "python")
    connection = admin_connection()
    name = unique("cronlease-test-celery")
    try:
        channel = connection.channel()
        channel.queue_declare(name, durable=True)
        [run] = outbox_runs(1, args=args)
        deliverer = CeleryAmqpDeliverer(spec(name, priority))
        try:
            assert deliverer.deliver([run]) == Delivered(1)
        finally:
            deliverer.close()
        _, ours_properties = deliverer.message(run)
        custom = {"periodic_task_name": run.fields["schedule"]}
        custom.update((k, v) for k, v in ours_properties["headers"].items() if "cronlease_" in k)
        payload = {
            "job": "record",
            "args": json.loads(args),
            "name": name,
            "run_id": run.run_id,
            "schedule": run.fields["schedule"],
            "priority": priority,
            "headers": custom,
        }
        subprocess.run(
            [str(python), "-c", SEND_TASK, URL, json.dumps(payload)], check=True, timeout=60
        )
        (_, ours, ours_body), (_, theirs, theirs_body) = drain(channel, name)
        assert ours_body == theirs_body
        assert json.loads(ours_body)[:2] == (
            [json.loads(args), {}] if args.startswith("[") else [[], json.loads(args)]
        )
        assert theirs.correlation_id == ours.correlation_id == run.run_id
        assert theirs.headers["id"] == ours.headers["id"] == run.run_id
        assert ours.headers["origin"] == "cronlease@r1"
        for part in ("origin",):
            theirs.headers.pop(part), ours.headers.pop(part)
        assert list(theirs.headers.items()) == list(ours.headers.items())
        assert theirs.reply_to and ours.reply_to is None
        theirs.reply_to = None
        assert str(theirs) == str(ours)  # every other property, pika's rendering of them all
        assert (ours.priority, ours.delivery_mode) == (priority, 2)
    finally:
        channel = connection.channel()
        channel.queue_delete(name)
        channel.exchange_delete(name)  # send_task declared it (task_create_missing_queues)
        connection.close()


def test_an_outbox_run_becomes_the_in_redis_encoders_run() -> None:
    [kwargs_run] = outbox_runs(1, args='{"n": 1}')
    [positional] = outbox_runs(1, args='[1, "x"]')
    run = encoding_run(kwargs_run)
    assert (run.run_id, run.args, run.fire_ts, run.token) == (
        kwargs_run.run_id, {"n": 1}, 1_795_312_800, "0000000000000007"
    )  # fmt: skip
    assert run.enqueued_at == pytest.approx(1_795_312_800.004)
    assert run.meta()["enqueued_at"] == "2026-11-22T02:00:00.004Z"
    assert encoding_run(positional).args == (1, "x")


def test_a_queue_no_worker_declared_is_unroutable_and_named() -> None:
    admin_connection().close()
    name = unique("cronlease-test-celery-missing")
    deliverer = CeleryAmqpDeliverer(spec(name))
    try:
        [warning] = deliverer.open()
        assert f"no queue {name!r}" in warning
        [run] = outbox_runs(1)
        result = deliverer.deliver([run])
        assert result.confirmed == 0 and result.error is not None
        assert f"run {run.run_id} is unroutable" in result.error and name in result.error
    finally:
        deliverer.close()


# --- the real worker ---------------------------------------------------------------------------


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], queue: str, record: Path, log: Path):
        self.process = process
        self.queue = queue
        self.record = record
        self.log = log

    def lines(self) -> list[list[str]]:
        if not self.record.exists():
            return []
        return [line.split("\t") for line in self.record.read_text().splitlines()]

    def executed(self) -> list[str]:
        return [fields[0] for fields in self.lines()]

    def broker_redeliveries(self) -> int:
        return sum(1 for fields in self.lines() if fields[5] == "True")

    def reset(self) -> None:
        self.record.write_text("")

    def log_tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A celery worker on RabbitMQ, consuming a queue of this module's own (it declares it, as
    Celery does: durable, with a direct exchange of the same name)."""
    celery = venv_bin("celery", "celery")
    admin_connection().close()
    folder = tmp_path_factory.mktemp("celery-amqp-worker")
    (folder / "amqptasks.py").write_text(WORKER_APP)
    queue = unique("cronlease-test-celery")
    record, log = folder / "executed.tsv", folder / "worker.log"
    env = {
        **os.environ,
        "CELERY_BROKER_URL": URL,
        "CRONLEASE_RECORD": str(record),
        "PYTHONPATH": str(folder),
    }
    command = [
        str(celery), "-A", "amqptasks", "worker", "-Q", queue, "-P", "solo", "-c", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
    ]  # fmt: skip
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    started = Worker(process, queue, record, log)
    try:

        def ready() -> bool:
            assert process.poll() is None, f"celery worker exited:\n{started.log_tail()}"
            return " ready." in started.log_tail()

        wait_until(ready, START_TIMEOUT_S, 0.05)
        yield started
    finally:
        # SIGKILL after 3 s: a solo worker on py-amqp takes ~10 s to act on SIGTERM; its
        # tasks are all done and acknowledged by then.
        stop_group(process, grace_s=3)
        connection = admin_connection()
        try:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)
        finally:
            connection.close()


@pytest.fixture
def fresh_worker(worker: Worker) -> Worker:
    worker.reset()
    return worker


def test_the_real_worker_executes_each_run_with_its_id_fire_time_and_args(
    fresh_worker: Worker,
) -> None:
    runs = outbox_runs(3, args='{"n": 1}') + outbox_runs(2, "pos", args='[1, "a"]')
    deliverer = CeleryAmqpDeliverer(spec(fresh_worker.queue))
    try:
        assert deliverer.open() == []  # the worker declared the queue
        assert deliverer.deliver(runs) == Delivered(5)
    finally:
        deliverer.close()

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
        _, fire_time, args, kwargs, routing_key, redelivered = by_id[run.run_id]
        assert fire_time == run.fields["fire_time"]
        if run.fields["schedule"] == "pos":
            assert (args, kwargs) == ("(1, 'a')", "{}")
        else:
            assert (args, kwargs) == ("()", "{'n': 1}")
        assert (routing_key, redelivered) == (fresh_worker.queue, "False")


def test_through_failover_and_stop_app_into_a_real_celery_worker(
    broker_app: None,  # noqa: F811  (the fixture imported above)
    fresh_worker: Worker,
    redis: redis_py.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    queue_yaml = textwrap.dedent(
        f"""
        target: celery
        url: amqp://guest:${{{PASSWORD_VARIABLE}}}@127.0.0.1:5672//
        name: {fresh_worker.queue}
        """
    )
    log_dir = tmp_path / "logs"

    def counted(twice: list[str]) -> int:
        return relay_counted(log_dir) + fresh_worker.broker_redeliveries()

    proof = prove_exactly_once_through_failover(
        redis_server,
        tmp_path,
        queue_yaml,
        "record",
        fresh_worker.executed,
        outage=(lambda: rabbitmqctl("stop_app"), lambda: rabbitmqctl("start_app")),
        duplicates_allowed=counted,
        env={PASSWORD_VARIABLE: "guest"},
        settle_timeout_s=60.0,
    )
    assert len(proof.executed) >= 12
    for task_id, fire_time, *_ in fresh_worker.lines():
        assert task_id.endswith(f"@{fire_time}")
    logs = "".join(path.read_text() for path in proof.log_dir.glob("*.log"))
    assert "could not take" in logs, "the outage never reached the relay"
