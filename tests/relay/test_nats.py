"""NATS JetStream deliverer, against a REAL nats-server with JetStream: what a nats-py JetStream
consumer receives, `Nats-Msg-Id` de-duplication (a run delivered twice is stored once and
counted), the stream checks of open() (missing stream, wrong stream, no_ack, a duplicate window
shorter than the catch-up window), and outages: a server stopped and restarted (a nats-server of
this module's own, on a free port, so the machine's stays up), a port that accepts but never
answers.

The machine's server (127.0.0.1:4222, `nats-server -js`) serves the tests that need no outage;
each test makes a stream of its own (unique name and subject) and deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from scheduler.core.queues import QueueSpec
from scheduler.targets.relay.base import OutboxRun, TargetUnavailable
from scheduler.targets.relay.nats import HEADER_FIELDS, NatsDeliverer
from tests.redis_server import free_port, wait_until

nats = pytest.importorskip("nats", reason="nats-py is not installed: pip install 'cronlease[nats]'")
from nats.js.api import StorageType, StreamConfig  # noqa: E402

MACHINE_URL = "nats://127.0.0.1:4222"
FIRE_TS = 1_795_312_800  # 2026-11-22T02:00:00Z
NO_SERVER = (
    "no NATS server with JetStream on 127.0.0.1:4222: install nats-server (Debian: "
    "apt-get install nats-server) and run `nats-server -a 127.0.0.1 -p 4222 -js`"
)


def _reachable(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def spec(subject: str, url: str = MACHINE_URL, **options: Any) -> QueueSpec:
    return QueueSpec(
        queue="jobs",
        target="nats",
        name=subject,
        options=MappingProxyType({"url": url, "stream": "", **options}),
    )


def outbox_run(schedule: str = "tick", offset: int = 0, args: Any = None) -> OutboxRun:
    ts = FIRE_TS + offset
    fire_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    fields = {
        "run_id": f"{schedule}@{fire_time}",
        "schedule": schedule,
        "job": "jobs.record",
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


# --- streams and a real consumer -----------------------------------------------------------


class Stream:
    """A JetStream stream of the test's own, on `url`, deleted by `delete()`."""

    def __init__(self, url: str, **config: Any) -> None:
        tag = uuid.uuid4().hex[:10]
        self.url = url
        self.name = f"CRONLEASE_TEST_{tag}"
        self.subject = f"cronlease.test.{tag}"
        run_async(
            self._call(
                "add_stream", StreamConfig(name=self.name, subjects=[self.subject], **config)
            )
        )

    async def _call(self, method: str, *args: Any) -> Any:
        nc = await nats.connect(self.url, connect_timeout=2, allow_reconnect=False)
        try:
            return await getattr(nc.jetstream(timeout=3), method)(*args)
        finally:
            await nc.close()

    def messages(self) -> int:
        return int(run_async(self._call("stream_info", self.name)).state.messages)

    def consume(self, expected: int, timeout_s: float = 10.0) -> list[Any]:
        """Every message of the stream, through a nats-py pull consumer of its own (acked)."""

        async def fetch() -> list[Any]:
            nc = await nats.connect(self.url, connect_timeout=2, allow_reconnect=False)
            try:
                js = nc.jetstream(timeout=3)
                durable = f"reader_{uuid.uuid4().hex[:8]}"
                sub = await js.pull_subscribe(self.subject, durable=durable, stream=self.name)
                got: list[Any] = []
                deadline = time.monotonic() + timeout_s
                while len(got) < expected and time.monotonic() < deadline:
                    with contextlib.suppress(nats.errors.TimeoutError):
                        for msg in await sub.fetch(expected - len(got), timeout=1):
                            await msg.ack()
                            got.append(msg)
                # Nothing more than expected is there.
                with contextlib.suppress(nats.errors.TimeoutError):
                    got += await sub.fetch(1, timeout=0.3)
                return got
            finally:
                await nc.close()

        return list(run_async(fetch()))

    def delete(self) -> None:
        with contextlib.suppress(Exception):
            run_async(self._call("delete_stream", self.name))


@pytest.fixture(scope="module")
def machine_nats() -> str:
    if not _reachable(4222):
        pytest.skip(NO_SERVER)
    return MACHINE_URL


@pytest.fixture
def make_stream(machine_nats: str) -> Iterator[Any]:
    made: list[Stream] = []

    def make(url: str = machine_nats, **config: Any) -> Stream:
        stream = Stream(url, **config)
        made.append(stream)
        return stream

    yield make
    for stream in made:
        stream.delete()


@pytest.fixture
def deliverers() -> Iterator[list[NatsDeliverer]]:
    made: list[NatsDeliverer] = []
    yield made
    for deliverer in made:
        deliverer.close()


def opened(made: list[NatsDeliverer], queue: QueueSpec, window_s: int = 60) -> NatsDeliverer:
    deliverer = NatsDeliverer(queue, catchup_window_s=window_s)
    made.append(deliverer)
    assert deliverer.open() == []
    return deliverer


def relay_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nats-") and t.is_alive()]


# --- the machine's server ------------------------------------------------------------------


def test_the_consumer_gets_each_run_as_json_with_its_fields_as_headers(
    make_stream: Any, deliverers: list[NatsDeliverer]
) -> None:
    stream = make_stream(duplicate_window=120.0)
    deliverer = opened(deliverers, spec(stream.subject), window_s=120)
    runs = [outbox_run(offset=i) for i in range(4)]
    runs.append(outbox_run("other", 1, args=[1, "ü", {"x": None}]))
    result = deliverer.deliver(runs)
    assert (result.confirmed, result.duplicates, result.error) == (5, 0, None)
    messages = stream.consume(5)
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [r.run_id for r in runs]
    for message, run in zip(messages, runs, strict=True):
        body = json.loads(message.data)
        assert body == {**run.fields, "args": run.args}
        assert message.subject == stream.subject
        assert {k: message.headers[k] for k in HEADER_FIELDS} == {
            k: run.fields[k] for k in HEADER_FIELDS
        }
        assert "args" not in message.headers
    assert json.loads(messages[-1].data)["args"] == [1, "ü", {"x": None}]


def test_a_run_delivered_again_is_stored_once_and_counted(
    make_stream: Any, deliverers: list[NatsDeliverer]
) -> None:
    stream = make_stream(duplicate_window=3600.0)
    queue = spec(stream.subject)
    first = opened(deliverers, queue, window_s=3600)
    runs = [outbox_run(offset=i) for i in range(6)]
    assert first.deliver(runs[:4]).confirmed == 4
    # A new leader's relay (another deliverer, another connection) claims a batch the old one
    # had delivered, plus new runs.
    second = opened(deliverers, queue, window_s=3600)
    result = second.deliver(runs)
    assert (result.confirmed, result.duplicates, result.error) == (6, 4, None)
    assert second.deliver(runs[:1]).duplicates == 1
    assert stream.messages() == 6
    got = [m.headers["Nats-Msg-Id"] for m in stream.consume(6)]
    assert got == [r.run_id for r in runs]


def test_a_batch_in_several_calls_keeps_its_order(
    make_stream: Any, deliverers: list[NatsDeliverer]
) -> None:
    stream = make_stream(duplicate_window=120.0)
    deliverer = opened(deliverers, spec(stream.subject))
    runs = [outbox_run(schedule=f"s{i % 3}", offset=i) for i in range(300)]
    for start in range(0, 300, 100):
        assert deliverer.deliver(runs[start : start + 100]).confirmed == 100
    got = [m.headers["Nats-Msg-Id"] for m in stream.consume(300)]
    assert got == [r.run_id for r in runs]


def test_a_missing_stream_is_said_in_a_sentence_and_no_thread_is_left(
    machine_nats: str,
) -> None:
    subject = f"cronlease.nostream.{uuid.uuid4().hex[:8]}"
    deliverer = NatsDeliverer(spec(subject), catchup_window_s=7200)
    with pytest.raises(TargetUnavailable) as raised:
        deliverer.open()
    text = str(raised.value)
    assert f"no JetStream stream holds subject '{subject}'" in text
    assert f"nats stream add CRONLEASE --subjects '{subject}'" in text
    assert "--dupe-window 2h" in text and "nats://127.0.0.1:4222" in text
    assert relay_threads() == []
    # deliver() on it tries again, and says the same.
    with pytest.raises(TargetUnavailable, match="no JetStream stream holds"):
        deliverer.deliver([outbox_run()])
    deliverer.close()
    assert relay_threads() == []


def test_a_named_stream_must_hold_the_subject(
    make_stream: Any, deliverers: list[NatsDeliverer]
) -> None:
    stream, other = make_stream(), make_stream()
    wrong = NatsDeliverer(spec(stream.subject, stream=other.name))
    with pytest.raises(TargetUnavailable) as raised:
        wrong.open()
    assert f"stream '{other.name}' does not hold subject '{stream.subject}'" in str(raised.value)
    assert f"it is held by stream '{stream.name}'" in str(raised.value)
    missing = NatsDeliverer(spec(stream.subject, stream="NO_SUCH_STREAM"))
    with pytest.raises(TargetUnavailable, match="'NO_SUCH_STREAM' does not hold"):
        missing.open()
    right = NatsDeliverer(spec(stream.subject, stream=stream.name), catchup_window_s=60)
    deliverers.append(right)
    right.open()
    assert right.deliver([outbox_run()]).confirmed == 1


def test_a_duplicate_window_shorter_than_the_catch_up_window_is_warned(
    make_stream: Any, deliverers: list[NatsDeliverer]
) -> None:
    short = make_stream(duplicate_window=120.0)
    deliverer = NatsDeliverer(spec(short.subject), catchup_window_s=3600)
    deliverers.append(deliverer)
    [warning] = deliverer.open()
    assert f"stream '{short.name}'" in warning
    assert "duplicate window of 2m, shorter than the catch-up window (1h)" in warning
    assert f"nats stream edit {short.name} --dupe-window 1h" in warning
    # As long as the window: no warning.
    assert opened(deliverers, spec(short.subject), window_s=120).spec.name == short.subject
    memory = make_stream(duplicate_window=3600.0, storage=StorageType.MEMORY)
    in_memory = NatsDeliverer(spec(memory.subject), catchup_window_s=60)
    deliverers.append(in_memory)
    [warning] = in_memory.open()
    assert "in memory" in warning


def test_a_no_ack_stream_is_refused(make_stream: Any) -> None:
    stream = make_stream(no_ack=True)
    with pytest.raises(TargetUnavailable, match="no_ack"):
        NatsDeliverer(spec(stream.subject)).open()
    assert relay_threads() == []


def test_a_run_too_large_stops_the_batch_before_it(
    make_stream: Any, deliverers: list[NatsDeliverer]
) -> None:
    stream = make_stream(max_msg_size=2048)
    deliverer = opened(deliverers, spec(stream.subject))
    runs = [outbox_run(offset=0), outbox_run(offset=1, args={"blob": "x" * 4000}), outbox_run()]
    result = deliverer.deliver(runs)
    assert (result.confirmed, result.duplicates) == (1, 0)
    assert result.error is not None and runs[1].run_id in result.error
    assert "larger than the 2048 bytes" in result.error
    assert stream.messages() == 1  # the run after it was not sent: it cannot overtake


def test_importing_the_module_needs_no_nats_client() -> None:
    code = (
        "import sys, scheduler.targets.relay.nats, scheduler.targets.relay.registry;"
        "print('nats' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- outages: a server of this module's own ------------------------------------------------


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class NatsServer:
    """`nats-server -js` on a free port of 127.0.0.1, its store in `directory` (kept across a
    restart, so the streams and their message ids survive it)."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.directory / "nats.log").open("ab")
        command = [
            self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js",
            "-sd", str(self.directory / "store"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        log.close()

        async def jetstream_ready() -> bool:
            try:
                nc = await nats.connect(self.url, connect_timeout=1, allow_reconnect=False)
            except Exception:
                return False
            try:
                await nc.jsm(timeout=1).account_info()
                return True
            except Exception:
                return False
            finally:
                await nc.close()

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            return bool(run_async(jetstream_ready()))

        wait_until(ready, 15, 0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def log_tail(self) -> str:
        path = self.directory / "nats.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    binary = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if binary is None:
        pytest.skip("nats-server is not installed (Debian: apt-get install nats-server)")
    server = NatsServer(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_stopped_server_is_unavailable_within_seconds_and_recovers_with_dedup(
    own_nats: NatsServer, deliverers: list[NatsDeliverer]
) -> None:
    stream = Stream(own_nats.url, duplicate_window=3600.0)
    deliverer = opened(deliverers, spec(stream.subject, url=own_nats.url), window_s=3600)
    runs = [outbox_run(offset=i) for i in range(5)]
    assert deliverer.deliver(runs[:3]).confirmed == 3
    own_nats.stop()
    started = time.monotonic()
    with pytest.raises(TargetUnavailable) as raised:
        deliverer.deliver(runs)
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{own_nats.port}" in str(raised.value)
    # Still down: a new deliverer (the relay makes one after a failure) cannot open either.
    again = NatsDeliverer(spec(stream.subject, url=own_nats.url), catchup_window_s=3600)
    with pytest.raises(TargetUnavailable, match="cannot connect"):
        again.open()
    own_nats.start()
    # The same deliverer reconnects; the runs it had delivered are duplicates (their ids are
    # remembered across the restart), the others are stored, once.
    result = deliverer.deliver(runs)
    assert (result.confirmed, result.duplicates, result.error) == (5, 3, None)
    got = [m.headers["Nats-Msg-Id"] for m in stream.consume(5)]
    assert got == [r.run_id for r in runs]
    deliverer.close()
    assert relay_threads() == []


def test_a_frozen_server_is_unavailable_within_seconds_and_nothing_is_stored_twice(
    own_nats: NatsServer, deliverers: list[NatsDeliverer]
) -> None:
    """SIGSTOP: the connection stays up, no PubAck comes back; the batch is not confirmed.
    Once the server runs again, whatever it stored of that batch is a duplicate."""
    stream = Stream(own_nats.url, duplicate_window=3600.0)
    deliverer = opened(deliverers, spec(stream.subject, url=own_nats.url), window_s=3600)
    runs = [outbox_run(offset=i) for i in range(20)]
    assert deliverer.deliver(runs[:5]).confirmed == 5
    assert own_nats.process is not None
    own_nats.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(TargetUnavailable, match="no PubAck"):
            deliverer.deliver(runs[5:])
        assert time.monotonic() - started < 12
    finally:
        own_nats.process.send_signal(signal.SIGCONT)
    result = deliverer.deliver(runs)
    assert (result.confirmed, result.error) == (20, None)
    assert result.duplicates >= 5
    got = [m.headers["Nats-Msg-Id"] for m in stream.consume(20)]
    assert got == [r.run_id for r in runs]


def test_a_port_that_never_answers_is_unavailable_within_seconds(machine_nats: str) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel; nobody ever says INFO
        url = f"nats://127.0.0.1:{silent.getsockname()[1]}"
        deliverer = NatsDeliverer(spec("cronlease.silent", url=url))
        started = time.monotonic()
        with pytest.raises(TargetUnavailable, match="cannot connect"):
            deliverer.open()
        assert time.monotonic() - started < 8
    assert relay_threads() == []
