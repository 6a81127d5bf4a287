"""NATS JetStream through the relay, end to end: three replicas, every-second schedules, the leader
SIGKILLed twice and the NATS server stopped and restarted once (tests/targets/harness.py); what
a REAL nats-py JetStream consumer received holds every handled fire exactly once: the relay's
re-deliveries (a killed leader's pending batch claimed by the next, a batch cut by the outage)
are absorbed by `Nats-Msg-Id`.

The NATS server is this module's own (tests/relay/test_nats.py NatsServer: `nats-server -js` on
a free port, its store kept across the restart), so the machine's server stays up. The queue's
url is `${CRONLEASE_TEST_NATS_URL}`, filled from the daemons' environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer
from tests.relay.test_nats import NatsServer, Stream, own_nats  # noqa: F401 (a fixture)
from tests.targets.harness import prove_exactly_once_through_failover

nats = pytest.importorskip("nats", reason="nats-py is not installed: pip install 'cronlease[nats]'")

URL_VARIABLE = "CRONLEASE_TEST_NATS_URL"


class Reader:
    """A durable pull consumer on its own thread and loop, reconnecting across the restart. It
    records each message once per STREAM sequence: a message redelivered to the consumer (its
    ack lost in the restart) is not a second copy, a second stored message is."""

    def __init__(self, url: str, stream: str, subject: str) -> None:
        self._url, self._stream, self._subject = url, stream, subject
        self._seen: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def executed(self) -> list[str]:
        with self._lock:
            return [self._seen[seq] for seq in sorted(self._seen)]

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    async def _run(self) -> None:
        async def quiet(_error: Exception) -> None:
            return None

        while not self._stopping.is_set():
            try:
                nc = await nats.connect(
                    self._url, connect_timeout=1, max_reconnect_attempts=-1,
                    reconnect_time_wait=0.2, error_cb=quiet,
                )  # fmt: skip
            except Exception:
                await asyncio.sleep(0.2)
                continue
            try:
                js = nc.jetstream(timeout=2)
                sub = await js.pull_subscribe(self._subject, durable="reader", stream=self._stream)
                while not self._stopping.is_set():
                    with contextlib.suppress(nats.errors.TimeoutError):
                        for msg in await sub.fetch(100, timeout=0.3):
                            self._record(msg)
                            await msg.ack()
            except Exception:
                await asyncio.sleep(0.2)  # the server went away: connect and bind again
            finally:
                with contextlib.suppress(Exception):
                    await nc.close()

    def _record(self, msg: Any) -> None:
        with self._lock:
            self._seen[msg.metadata.sequence.stream] = msg.headers["Nats-Msg-Id"]


@pytest.fixture
def reader_for(own_nats: NatsServer) -> Iterator[Any]:  # noqa: F811
    made: list[Reader] = []

    def make(stream: Stream) -> Reader:
        reader = Reader(own_nats.url, stream.name, stream.subject)
        made.append(reader)
        return reader

    yield make
    for reader in made:
        reader.stop()


def test_exactly_once_through_failover_and_a_nats_restart(
    own_nats: NatsServer,  # noqa: F811
    reader_for: Any,
    redis: Any,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    stream = Stream(own_nats.url, duplicate_window=7200.0)
    reader = reader_for(stream)
    queue_yaml = f"target: nats\nurl: ${{{URL_VARIABLE}}}\nname: {stream.subject}\n"
    proof = prove_exactly_once_through_failover(
        redis_server,
        tmp_path,
        queue_yaml,
        "jobs.record",
        reader.executed,
        outage=(own_nats.stop, own_nats.start),
        env={URL_VARIABLE: own_nats.url},
    )
    assert len(proof.expected) >= 12
    # Every stored message is one run: the stream holds no second copy of any.
    assert stream.messages() == len(set(proof.executed)) == len(proof.executed)
    logs = "".join(path.read_text(errors="replace") for path in proof.log_dir.glob("*"))
    assert "could not take" in logs  # the relay said the target was out, loudly
