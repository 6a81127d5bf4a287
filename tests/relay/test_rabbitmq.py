"""RabbitMQ deliverer against the REAL broker (RabbitMQ 3.10 on 127.0.0.1:5672, guest/guest):
what a pika consumer receives, confirms and `mandatory` (an unroutable run is an error, never
confirmed), and the outages: `rabbitmqctl stop_app` / `start_app` mid-stream (TargetUnavailable
within seconds, recovery after, nothing confirmed lost, duplicates only among the runs a failed
batch left in doubt) and a frozen port (a forwarder that swallows everything).

Each test declares its own durable queue (unique name) and deletes it after: the deliverer never
declares one, so a missing queue must show as unroutable. A test that stops the broker's app
starts it again whatever happens (the `broker_app` fixture checks it at teardown too).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import redis as redis_py

from scheduler.core.queues import QueueSpec
from scheduler.targets.relay.base import Delivered, OutboxRun, TargetUnavailable
from scheduler.targets.relay.rabbitmq import RabbitDeliverer, virtual_host
from tests.redis_server import RedisServer, wait_until
from tests.relay.test_postgres import PortBlocker
from tests.targets.harness import prove_exactly_once_through_failover

pika = pytest.importorskip("pika", reason="pip install 'cronlease[rabbitmq]' (pika)")

URL = "amqp://guest:guest@127.0.0.1:5672//"
ADMIN_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
START_TS = 1_795_312_800


# --- helpers shared with test_celery_amqp.py ----------------------------------------------------


def admin_connection() -> Any:
    """A pika connection for the test's own declarations and reads; skips without a broker."""
    try:
        return pika.BlockingConnection(pika.URLParameters(ADMIN_URL))
    except pika.exceptions.AMQPError as error:
        pytest.skip(
            f"RabbitMQ is not running on 127.0.0.1:5672 with guest/guest ({error!r}): "
            "apt-get install rabbitmq-server (CI runs it)"
        )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def broker_running() -> bool:
    done = subprocess.run(
        ["rabbitmqctl", "await_startup", "--timeout", "1"], capture_output=True, timeout=30
    )
    return done.returncode == 0


@pytest.fixture
def broker_app() -> Iterator[None]:
    """For tests that stop the broker's app: skips without root or rabbitmqctl; at teardown the
    app is started again if a test left it stopped."""
    admin_connection().close()
    if os.geteuid() != 0 or shutil.which("rabbitmqctl") is None:
        pytest.skip("stopping RabbitMQ's app needs root and rabbitmqctl (Debian's rabbitmq-server)")
    try:
        yield
    finally:
        if not broker_running():
            rabbitmqctl("start_app")
        wait_until(broker_running, 30, 0.2)


def outbox_runs(
    count: int, schedule: str = "tick", start: int = START_TS, args: str = '{"n": 1}'
) -> list[OutboxRun]:
    """Runs as the outbox stream holds them (DESIGN's run table, every field a string)."""
    runs = []
    for offset in range(count):
        ts = start + offset
        fire_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
        fields = {
            "run_id": f"{schedule}@{fire_time}",
            "schedule": schedule,
            "job": "record",
            "args": args,
            "queue": "jobs",
            "fire_time": fire_time,
            "fire_ts": str(ts),
            "enqueued_at": fire_time[:-1] + ".004Z",
            "trigger": "scheduled",
            "token": "0000000000000007",
            "replica": "r1",
        }
        runs.append(OutboxRun(f"{ts}000-0", MappingProxyType(fields)))
    return runs


def drain(channel: Any, queue: str) -> list[tuple[Any, Any, bytes]]:
    """Every message waiting in `queue` (method, properties, body), in order, acknowledged."""
    messages: list[tuple[Any, Any, bytes]] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return messages
        messages.append((method, properties, body))
        channel.basic_ack(method.delivery_tag)


# --- fixtures -----------------------------------------------------------------------------------


def spec(name: str, url: str = URL, **options: Any) -> QueueSpec:
    return QueueSpec(
        queue="jobs",
        target="rabbitmq",
        name=name,
        options=MappingProxyType({"url": url, "exchange": "", "routing_key": "", **options}),
    )


@pytest.fixture
def channel() -> Iterator[Any]:
    connection = admin_connection()
    try:
        yield connection.channel()
    finally:
        with suppress(pika.exceptions.AMQPError):  # stop_app closed it
            connection.close()


@pytest.fixture
def queue(channel: Any) -> Iterator[str]:
    """A durable classic queue of this test's own, deleted after."""
    name = unique("cronlease-test")
    channel.queue_declare(name, durable=True)
    try:
        yield name
    finally:
        _delete_queue(name)


def _delete_queue(name: str) -> None:
    connection = admin_connection()
    try:
        connection.channel().queue_delete(name)
    finally:
        connection.close()


@pytest.fixture
def deliverer(queue: str) -> Iterator[RabbitDeliverer]:
    made = RabbitDeliverer(spec(queue))
    try:
        yield made
    finally:
        made.close()


# --- what arrives -------------------------------------------------------------------------------


def test_a_pika_consumer_receives_each_run_persistent_with_its_id_fields_and_order(
    deliverer: RabbitDeliverer, channel: Any, queue: str
) -> None:
    assert deliverer.open() == []
    runs = outbox_runs(3, args='{"to": "ü", "n": 2}') + outbox_runs(2, "pos", args='[1, "x"]')
    assert deliverer.deliver(runs) == Delivered(5)
    messages = drain(channel, queue)
    assert [props.message_id for _, props, _ in messages] == [run.run_id for run in runs]
    method, props, body = messages[0]
    assert (method.exchange, method.routing_key) == ("", queue)
    assert props.delivery_mode == 2
    assert (props.content_type, props.content_encoding) == ("application/json", "utf-8")
    assert (props.type, props.app_id, props.timestamp) == ("record", "cronlease", START_TS)
    fields = dict(runs[0].fields)
    assert json.loads(body) == {**fields, "args": {"to": "ü", "n": 2}}
    assert props.headers == {f"cronlease_{k}": v for k, v in fields.items() if k != "args"}
    assert json.loads(messages[3][2])["args"] == [1, "x"]


def test_a_consumer_with_manual_acks_gets_them_all_once(
    deliverer: RabbitDeliverer, queue: str
) -> None:
    runs = outbox_runs(50)
    assert deliverer.deliver(runs[:20]) == Delivered(20)
    assert deliverer.deliver(runs[20:]) == Delivered(30)
    connection = admin_connection()
    received: list[str] = []
    try:
        consumer = connection.channel()
        consumer.basic_qos(prefetch_count=10)
        for method, props, _ in consumer.consume(queue, inactivity_timeout=1.0):
            if method is None:
                break
            received.append(props.message_id)
            consumer.basic_ack(method.delivery_tag)
        consumer.cancel()
    finally:
        connection.close()
    assert received == [run.run_id for run in runs]


def test_celery_style_urls_name_the_vhost_as_kombu_does() -> None:
    assert virtual_host("amqp://u:p@h:5672//") == "/"
    assert virtual_host("amqp://u:p@h:5672/") == "/"
    assert virtual_host("amqp://u:p@h:5672") == "/"
    assert virtual_host("amqp://u:p@h:5672/%2F") == "/"
    assert virtual_host("amqp://u:p@h/billing?heartbeat=30") == "billing"


def test_a_pyamqp_url_and_an_exchange_with_a_routing_key(channel: Any, queue: str) -> None:
    exchange = unique("cronlease-test-x")
    channel.exchange_declare(exchange, "direct", durable=True)
    channel.queue_bind(queue, exchange, routing_key="reports")
    made = RabbitDeliverer(
        spec(queue, url="pyamqp://guest:guest@127.0.0.1:5672//", exchange=exchange,
             routing_key="reports")
    )  # fmt: skip
    try:
        assert made.open() == []
        assert made.deliver(outbox_runs(2)) == Delivered(2)
        [(method, _, _), _] = drain(channel, queue)
        assert (method.exchange, method.routing_key) == (exchange, "reports")
    finally:
        made.close()
        channel.exchange_delete(exchange)


# --- refused runs -------------------------------------------------------------------------------


def test_an_unroutable_run_is_an_error_not_confirmed_until_its_queue_exists(
    channel: Any,
) -> None:
    name = unique("cronlease-test-missing")
    made = RabbitDeliverer(spec(name))
    try:
        [warning] = made.open()
        assert f"no queue {name!r}" in warning
        runs = outbox_runs(3)
        result = made.deliver(runs)
        assert result.confirmed == 0
        assert result.error is not None
        assert "unroutable" in result.error and runs[0].run_id in result.error
        assert f"the default exchange has no queue {name!r}" in result.error
        assert "NO_ROUTE" in result.error
        # The consumer declares the queue: the same deliverer, same connection, delivers them.
        channel.queue_declare(name, durable=True)
        assert made.deliver(runs) == Delivered(3)
        assert [p.message_id for _, p, _ in drain(channel, name)] == [r.run_id for r in runs]
    finally:
        made.close()
        channel.queue_delete(name)


def test_a_wrong_routing_key_names_the_exchange_and_the_key(channel: Any, queue: str) -> None:
    exchange = unique("cronlease-test-x")
    channel.exchange_declare(exchange, "direct", durable=True)
    channel.queue_bind(queue, exchange, routing_key="reports")
    made = RabbitDeliverer(spec(queue, exchange=exchange, routing_key="reprots"))
    try:
        assert made.open() == []  # the exchange exists; AMQP cannot tell what it routes
        result = made.deliver(outbox_runs(1))
        assert result.confirmed == 0 and result.error is not None
        assert f"exchange {exchange!r} routes routing key 'reprots' to no queue" in result.error
    finally:
        made.close()
        channel.exchange_delete(exchange)


def test_a_missing_exchange_is_an_error_and_the_deliverer_recovers_once_it_exists(
    channel: Any, queue: str
) -> None:
    exchange = unique("cronlease-test-x")
    made = RabbitDeliverer(spec(queue, exchange=exchange, routing_key=queue))
    try:
        [warning] = made.open()
        assert f"no exchange {exchange!r}" in warning
        result = made.deliver(outbox_runs(2))
        assert result.confirmed == 0 and result.error is not None
        assert "NOT_FOUND" in result.error and exchange in result.error
        channel.exchange_declare(exchange, "direct", durable=True)
        channel.queue_bind(queue, exchange, routing_key=queue)
        assert made.deliver(outbox_runs(2)) == Delivered(2)
        assert len(drain(channel, queue)) == 2
    finally:
        made.close()
        channel.exchange_delete(exchange)


def test_a_batch_is_confirmed_up_to_its_first_refused_run(channel: Any, queue: str) -> None:
    """A headers exchange that routes only schedule `a`: in a, a, b, a the prefix is 2 and the
    error names b's run. The batch was published in one go, so the last `a` already reached the
    queue: offered again by the relay, it is a counted redelivery (rabbitmq.py)."""
    exchange = unique("cronlease-test-h")
    channel.exchange_declare(exchange, "headers", durable=True)
    channel.queue_bind(queue, exchange, arguments={"x-match": "all", "cronlease_schedule": "a"})
    made = RabbitDeliverer(spec(queue, exchange=exchange))
    try:
        a = outbox_runs(3, "a")
        b = outbox_runs(1, "b")
        result = made.deliver([a[0], a[1], b[0], a[2]])
        assert result.confirmed == 2
        assert result.error is not None and b[0].run_id in result.error
        assert [p.message_id for _, p, _ in drain(channel, queue)] == [r.run_id for r in a]
    finally:
        made.close()
        channel.exchange_delete(exchange)


def test_a_run_that_cannot_be_a_message_stops_the_batch_there(
    deliverer: RabbitDeliverer, channel: Any, queue: str
) -> None:
    good = outbox_runs(3)
    [bad] = outbox_runs(1, "bad", args="{not json")
    result = deliverer.deliver([good[0], good[1], bad, good[2]])
    assert result.confirmed == 2
    assert result.error is not None and f"run {bad.run_id} cannot be made a message" in result.error
    assert [p.message_id for _, p, _ in drain(channel, queue)] == [r.run_id for r in good[:2]]
    assert deliverer.deliver([bad]) == Delivered(0, error=result.error)


# --- outages ------------------------------------------------------------------------------------


class Stream:
    """The relay's part, in a thread: deliver `runs` in order, in batches, the unconfirmed rest
    of a failed batch offered again after a pause, as daemon/relay.py does."""

    def __init__(self, deliverer: RabbitDeliverer, runs: Sequence[OutboxRun], batch: int) -> None:
        self.deliverer = deliverer
        self.runs = list(runs)
        self.batch = batch
        self.confirmed = 0
        self.in_doubt: list[str] = []  # runs of failed batches: offered again, maybe delivered
        self.failures: list[tuple[float, str]] = []  # (monotonic time, why)
        self.recovered_at: float | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.confirmed < len(self.runs) and not self.stopping.is_set():
            batch = self.runs[self.confirmed : self.confirmed + self.batch]
            try:
                result = self.deliverer.deliver(batch)
            except TargetUnavailable as error:
                result = Delivered(0, error=f"TargetUnavailable: {error}")
            self.confirmed += result.confirmed
            if result.error is not None:
                self.failures.append((time.monotonic(), result.error))
                self.in_doubt += [run.run_id for run in batch[result.confirmed :]]
                self.stopping.wait(0.2)
            else:
                if self.failures and self.recovered_at is None:
                    self.recovered_at = time.monotonic()
                self.stopping.wait(0.01)


def test_stop_app_mid_stream_is_unavailable_within_seconds_and_recovers_after_start_app(
    broker_app: None, deliverer: RabbitDeliverer, queue: str
) -> None:
    runs = outbox_runs(2000)
    stream = Stream(deliverer, runs, batch=20)
    stream.thread.start()
    try:
        wait_until(lambda: stream.confirmed >= 200, 20, 0.01)
        stopped_at = time.monotonic()
        try:
            rabbitmqctl("stop_app")
            wait_until(lambda: stream.failures, 10, 0.01)
            first_failure_s = stream.failures[0][0] - stopped_at
            assert not broker_running()
        finally:
            rabbitmqctl("start_app")
        started_at = time.monotonic()
        wait_until(lambda: stream.confirmed == len(runs), 60, 0.05)
    finally:
        stream.stopping.set()
        stream.thread.join(30)
    # stop_app closes the connections with 320 CONNECTION_FORCED, then refuses new ones.
    assert first_failure_s < 10
    reasons = " | ".join(why for _, why in stream.failures)
    assert "CONNECTION_FORCED" in reasons or "Connection refused" in reasons, reasons
    assert "TargetUnavailable" in reasons
    assert stream.recovered_at is not None and stream.recovered_at - started_at < 15
    connection = admin_connection()
    try:
        received = [props.message_id for _, props, _ in drain(connection.channel(), queue)]
    finally:
        connection.close()
    # Nothing confirmed lost (the queue and its persistent messages lived through stop_app), in
    # order; a run twice only if a failed batch left it in doubt (published, not confirmed).
    wanted = [run.run_id for run in runs]
    assert set(received) == set(wanted)
    twice = {run for run, n in Counter(received).items() if n > 1}
    assert twice <= set(stream.in_doubt), sorted(twice - set(stream.in_doubt))[:5]
    firsts = list(dict.fromkeys(received))
    assert firsts == wanted


def test_a_frozen_port_is_unavailable_within_the_timeout_never_a_hang(queue: str) -> None:
    """A forwarder that swallows everything (a frozen broker, a firewall DROP): the kernel still
    acknowledges what the relay sends, so only the deliverer's own deadlines can end the wait."""
    admin_connection().close()
    blocker = PortBlocker("127.0.0.1", 5672)
    url = URL.replace("127.0.0.1:5672", f"127.0.0.1:{blocker.port}")
    made = RabbitDeliverer(spec(queue, url=url), timeout_s=1.0)
    try:
        assert made.open() == []
        assert made.deliver(outbox_runs(5)) == Delivered(5)
        blocker.block()
        began = time.monotonic()
        with pytest.raises(TargetUnavailable, match="no confirm within 1 s"):
            made.deliver(outbox_runs(5, start=START_TS + 5))
        assert time.monotonic() - began < 3
        began = time.monotonic()  # reconnecting: the handshake gets no answer either
        with pytest.raises(TargetUnavailable, match="unreachable"):
            made.deliver(outbox_runs(5, start=START_TS + 5))
        assert time.monotonic() - began < 3
        blocker.unblock()
        assert made.deliver(outbox_runs(5, start=START_TS + 5)) == Delivered(5)
    finally:
        made.close()
        blocker.close()


def test_a_connection_cut_while_idle_is_reopened_before_the_next_batch(queue: str) -> None:
    """The broker (or a NAT) dropped the idle connection: nothing of the next batch was
    published yet, so the deliverer reconnects and delivers it, no error."""
    admin_connection().close()
    blocker = PortBlocker("127.0.0.1", 5672)
    url = URL.replace("127.0.0.1:5672", f"127.0.0.1:{blocker.port}")
    made = RabbitDeliverer(spec(queue, url=url), timeout_s=1.0)
    try:
        assert made.deliver(outbox_runs(2)) == Delivered(2)
        blocker.unblock()  # closes every forwarded connection (its FIN arrives at once)
        assert made.deliver(outbox_runs(2, start=START_TS + 2)) == Delivered(2)
    finally:
        made.close()
        blocker.close()


# --- end to end: the relay, three replicas, two leader kills, stop_app ------------------------

PASSWORD_VARIABLE = "CRONLEASE_TEST_RABBIT_PASSWORD"


class PikaConsumer:
    """A real consumer in a thread: manual acks, prefetch 10, reconnecting after an outage.
    Records each message's id and the broker's `redelivered` flag (a message it had received,
    unacknowledged, when the broker went away: RabbitMQ's redelivery, not a second publish)."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.received: list[tuple[str, bool]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def executed(self) -> list[str]:
        with self._lock:
            return [message_id for message_id, _ in self.received]

    def broker_redeliveries(self) -> int:
        with self._lock:
            return sum(1 for _, redelivered in self.received if redelivered)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                connection = pika.BlockingConnection(pika.URLParameters(ADMIN_URL))
            except pika.exceptions.AMQPError:
                self._stopping.wait(0.2)
                continue
            try:
                channel = connection.channel()
                channel.basic_qos(prefetch_count=10)
                for method, props, _ in channel.consume(self.queue, inactivity_timeout=0.2):
                    if self._stopping.is_set():
                        break
                    if method is None:
                        continue
                    with self._lock:
                        self.received.append((props.message_id, method.redelivered))
                    channel.basic_ack(method.delivery_tag)
            except pika.exceptions.AMQPError:  # stop_app: connect again once it is back
                continue
            finally:
                with suppress(pika.exceptions.AMQPError):
                    connection.close()


def relay_counted(log_dir: Path) -> int:
    """Runs the relays offered again, from every replica's log (a SIGKILLed one's metrics die
    with it): after a failure ("could not take N runs", each retry counted again: an upper
    bound) and after claiming a dead leader's pending runs ("N runs delivered again")."""
    logs = "".join(path.read_text() for path in log_dir.glob("*.log"))
    failed = re.findall(r"could not take (\d+) runs", logs)
    again = re.findall(r"(\d+) runs delivered again", logs)
    return sum(int(n) for n in failed + again)


def test_through_failover_and_stop_app_into_a_pika_consumer(
    broker_app: None,
    queue: str,
    redis: redis_py.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    queue_yaml = f"""
        target: rabbitmq
        url: amqp://guest:${{{PASSWORD_VARIABLE}}}@127.0.0.1:5672//
        name: {queue}
        """
    consumer = PikaConsumer(queue)
    log_dir = tmp_path / "logs"

    def counted(twice: list[str]) -> int:
        return relay_counted(log_dir) + consumer.broker_redeliveries()

    try:
        proof = prove_exactly_once_through_failover(
            redis_server,
            tmp_path,
            queue_yaml,
            "record",
            consumer.executed,
            outage=(lambda: rabbitmqctl("stop_app"), lambda: rabbitmqctl("start_app")),
            duplicates_allowed=counted,
            env={PASSWORD_VARIABLE: "guest"},
            settle_timeout_s=60.0,
        )
    finally:
        consumer.stop()
    assert len(proof.executed) >= 12
    logs = "".join(path.read_text() for path in proof.log_dir.glob("*.log"))
    assert "could not take" in logs, "the outage never reached the relay"
