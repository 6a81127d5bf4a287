"""NATS JetStream: each run published to the queue's subject, confirmed by the stream's PubAck.

Guarantee: effectively once inside the stream's duplicate window. Every run is published with
the header `Nats-Msg-Id` = its run id; JetStream stores a message id once per
`duplicate_window` and answers a second publish of it with a PubAck whose `duplicate` is true
(nats-server server/stream.go processJetStreamMsg, checkMsgId; the window defaults to 2 minutes,
StreamDefaultDuplicatesWindow, and is capped by the stream's max_age). So a run the relay
delivers again (it died between the PubAck and its acknowledgement, or a new leader claimed the
batch) is stored once, and counted in `duplicates`, as long as it comes back inside the window;
`open()` warns when the window is shorter than the catch-up window of the queue's schedules.
A run counts as confirmed only once its PubAck came back: the stream stored it (as durably as
its storage and replicas make it: file storage, R3 in a cluster).

What a consumer receives: subject = the queue's `name`; body = the run as JSON (DESIGN's run
table, every field a string, but `args` decoded: an object or a list); headers = the same fields
(but args), so a consumer can filter without parsing, plus `Nats-Msg-Id`.

The client is nats-py (asyncio). The deliverer owns a private event loop on a thread of its own,
so the connection's pings are answered between batches; the relay's thread submits coroutines to
it and waits with a deadline. A batch is published pipelined (publish_async, one connection: the
server stores them in the order sent) and confirmed as the prefix of runs whose PubAck came back.

Sources: nats-py 2.16 nats/js/client.py (publish_async, PubAck), nats/js/manager.py
(find_stream_name_by_subject, stream_info), nats/aio/client.py (connect: its server-pool walk);
TARGETS.md section 2 (nats-server server/stream.go); checked against nats-server 2.9.10 here
(the default window of 120 s, `duplicate: true` on a second publish, ids kept across a restart).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from scheduler.core.durations import format_duration
from scheduler.core.queues import QueueSpec
from scheduler.store.connection import redact
from scheduler.targets.relay.base import Delivered, OutboxRun, TargetUnavailable
from scheduler.targets.relay.secrets import resolve_url

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.js import JetStreamContext

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2  # nats-py takes whole seconds
REQUEST_TIMEOUT_S = 3.0  # a JetStream API call (stream lookup, stream info)
# A batch's PubAcks, all of them: a server that stops answering surfaces within this.
ACK_TIMEOUT_S = 5.0
# The relay's thread waits a little longer than the coroutine's own deadlines.
CALL_MARGIN_S = 2.0
# Run fields carried as headers (args rides in the body only: it may be long and multi-line).
HEADER_FIELDS = (
    "run_id", "schedule", "job", "queue", "fire_time", "fire_ts", "enqueued_at", "trigger",
    "token", "replica",
)  # fmt: skip

T = TypeVar("T")


class NatsDeliverer:
    def __init__(self, spec: QueueSpec, catchup_window_s: int = 3600) -> None:
        self.spec = spec
        self.subject = spec.name
        self._catchup_window_s = catchup_window_s
        self._wanted_stream = str(spec.options.get("stream") or "")
        self._stream = ""  # the stream found at open(): publishes expect it
        self._max_bytes = 0  # the smaller of the server's max_payload and the stream's limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._where = "NATS"

    # --- the Deliverer interface -----------------------------------------------------------

    def open(self) -> list[str]:
        """Connect, find the stream holding the subject, check it; warnings to log."""
        try:
            return self._call(self._open(), CONNECT_TIMEOUT_S * 2 + 1 + 2 * REQUEST_TIMEOUT_S)
        except BaseException:
            self.close()  # a deliverer whose open() failed is dropped: leave no thread behind
            raise

    def deliver(self, runs: Sequence[OutboxRun]) -> Delivered:
        if not runs:
            return Delivered(0)
        if self._nc is None or not self._nc.is_connected:
            self.open()  # reconnect after an outage (the warnings were logged the first time)
        try:
            return self._call(self._deliver(runs), ACK_TIMEOUT_S)
        except TargetUnavailable:
            self._drop_connection()
            raise

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None:
            return
        self._drop_connection()
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5.0)
        if not loop.is_running():
            loop.close()
        self._loop = self._thread = None

    # --- on the private loop ---------------------------------------------------------------

    async def _open(self) -> list[str]:
        import nats
        import nats.errors
        import nats.js.errors

        url = resolve_url(self.spec)
        servers = [part.strip() for part in url.split(",") if part.strip()]
        self._where = f"NATS at {', '.join(redact(s) for s in servers)}"
        await self._disconnect()
        try:
            # allow_reconnect=False: a lost connection is TargetUnavailable (the relay retries
            # with backoff). nats-py's first connect still walks its server pool until
            # max_reconnect_attempts (0 would be: forever), hence 1, no wait, and a deadline.
            nc = await asyncio.wait_for(
                nats.connect(
                    servers,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0,
                    error_cb=self._on_error,
                    name=f"cronlease-relay-{self.spec.queue}",
                ),
                CONNECT_TIMEOUT_S * 2 + 1,
            )
        except (nats.errors.Error, OSError, asyncio.TimeoutError) as error:
            raise TargetUnavailable(f"cannot connect to {self._where}: {_why(error)}") from None
        self._nc = nc
        self._js = nc.jetstream(timeout=REQUEST_TIMEOUT_S)
        jsm = nc.jsm(timeout=REQUEST_TIMEOUT_S)
        try:
            found = await jsm.find_stream_name_by_subject(self.subject)
        except nats.js.errors.NotFoundError:
            found = ""
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
            raise TargetUnavailable(
                f"{self._where} has no JetStream (start nats-server with -js, or enable "
                "jetstream in its config)"
            ) from None
        except (nats.errors.Error, OSError, asyncio.TimeoutError) as error:
            raise TargetUnavailable(f"{self._where}: stream lookup failed: {_why(error)}") from None
        if self._wanted_stream and found != self._wanted_stream:
            held = f"it is held by stream {found!r}" if found else "no stream holds it"
            raise TargetUnavailable(
                f"queue {self.spec.queue!r}: JetStream stream {self._wanted_stream!r} does not "
                f"hold subject {self.subject!r} on {self._where} ({held}); add the subject to "
                f"it (nats stream edit {self._wanted_stream} --subjects ...) or fix stream:"
            )
        if not found:
            raise TargetUnavailable(
                f"queue {self.spec.queue!r}: no JetStream stream holds subject "
                f"{self.subject!r} on {self._where}; create one, e.g. `nats stream add "
                f"CRONLEASE --subjects '{self.subject}' --storage file --retention limits "
                f"--dupe-window {_go_duration(self._catchup_window_s)}` (its duplicate window "
                "at least the catch-up window)"
            )
        try:
            info = await jsm.stream_info(found)
        except (nats.errors.Error, OSError, asyncio.TimeoutError) as error:
            raise TargetUnavailable(f"{self._where}: stream info failed: {_why(error)}") from None
        self._stream = found
        config = info.config
        if config.no_ack:
            raise TargetUnavailable(
                f"queue {self.spec.queue!r}: stream {found!r} is configured with no_ack, so "
                "a publish is never confirmed; the relay needs PubAcks (nats stream edit "
                f"{found} --ack)"
            )
        stream_limit = config.max_msg_size or -1
        self._max_bytes = nc.max_payload
        if stream_limit > 0:
            self._max_bytes = min(self._max_bytes, stream_limit)
        return self._warnings(found, float(config.duplicate_window or 0), config.storage)

    def _warnings(self, stream: str, window_s: float, storage: Any) -> list[str]:
        warnings = []
        if window_s < self._catchup_window_s:
            warnings.append(
                f"JetStream stream {stream!r} (subject {self.subject!r}) has a duplicate "
                f"window of {format_duration(int(window_s))}, shorter than the catch-up window "
                f"({format_duration(self._catchup_window_s)}) of the schedules on queue "
                f"{self.spec.queue!r}: a run delivered again later than that after its first "
                "delivery (a relay outage, a failover mid-batch) is stored twice; raise it: "
                f"nats stream edit {stream} --dupe-window {_go_duration(self._catchup_window_s)}"
            )
        if str(getattr(storage, "value", storage)) == "memory":
            warnings.append(
                f"JetStream stream {stream!r} keeps its messages in memory: a NATS restart "
                "loses the runs no consumer has taken yet (use --storage file)"
            )
        return warnings

    async def _deliver(self, runs: Sequence[OutboxRun]) -> Delivered:
        import nats.errors

        js = self._js
        if js is None:
            raise TargetUnavailable(f"not connected to {self._where}")
        messages = [_message(run) for run in runs]
        # A run too big is refused before anything is sent, so no later run overtakes it.
        sendable = next(
            (i for i, message in enumerate(messages) if _size(message) > self._max_bytes),
            len(messages),
        )
        futures: list[asyncio.Future[Any]] = []
        error: str | None = None
        unreachable = False  # the connection failed or the server stopped answering
        try:
            for payload, headers in messages[:sendable]:
                futures.append(
                    await js.publish_async(
                        self.subject, payload, headers=headers, stream=self._stream
                    )
                )
        except (nats.errors.Error, OSError) as failure:
            error, unreachable = f"publish failed: {_why(failure)}", True
        if futures:
            _, pending = await asyncio.wait(futures, timeout=ACK_TIMEOUT_S)
            for future in pending:
                future.cancel()
        confirmed = duplicates = 0
        for future in futures:
            if future.cancelled():
                error, unreachable = f"no PubAck within {ACK_TIMEOUT_S:.0f}s", True
                break
            refusal = future.exception()
            if refusal is not None:  # the server answered: it refused this run
                error = f"stream {self._stream!r} refused it: {_why(refusal)}"
                break
            confirmed += 1
            duplicates += bool(future.result().duplicate)
        if confirmed == len(runs):
            return Delivered(confirmed, duplicates)
        if error is None:
            error = (
                f"it is larger than the {self._max_bytes} bytes {self._where} or stream "
                f"{self._stream!r} takes (max_payload, max_msg_size)"
            )
        error = f"run {runs[confirmed].run_id!r} not confirmed: {error}"
        if unreachable and confirmed == 0:
            raise TargetUnavailable(f"{self._where}: {error}")
        if unreachable:  # the confirmed prefix is acknowledged; reconnect for the rest
            await self._disconnect()
        return Delivered(confirmed, duplicates, error)

    async def _disconnect(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), 2.0)
            except Exception as error:  # closing a broken connection: nothing to save
                log.debug("closing the NATS connection: %s", error)

    async def _on_error(self, error: Exception) -> None:
        log.debug("%s (queue %r): %s", self._where, self.spec.queue, _why(error))

    # --- the loop's thread -----------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        loop = self._start_loop()
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout_s + CALL_MARGIN_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TargetUnavailable(
                f"{self._where} did not answer within {timeout_s + CALL_MARGIN_S:.0f}s"
            ) from None

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name=f"nats-{self.spec.queue}", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def _drop_connection(self) -> None:
        if self._loop is not None and self._loop.is_running() and self._nc is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._disconnect(), self._loop).result(4.0)
            except Exception as error:
                log.debug("dropping the NATS connection: %s", error)
        self._nc = self._js = None


def _message(run: OutboxRun) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of one run: the run as JSON, its fields as headers, the run id as the
    message id JetStream de-duplicates by."""
    fields = dict(run.fields)
    body = {**fields, "args": run.args}
    headers = {"Nats-Msg-Id": run.run_id}
    headers.update({name: fields[name] for name in HEADER_FIELDS if fields.get(name)})
    return json.dumps(body, separators=(",", ":")).encode(), headers


def _size(message: tuple[bytes, dict[str, str]]) -> int:
    """Bytes of a message as the server counts them against max_payload: the body and the
    header block (the `NATS/1.0` line, a `name: value` line per header, a blank line)."""
    payload, headers = message
    return len(payload) + 12 + sum(len(k) + len(v) + 4 for k, v in headers.items())


def _go_duration(seconds: float) -> str:
    """A duration as the nats CLI and the server config take it (Go's: no days): `48h30m`."""
    whole = max(1, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def _why(error: BaseException) -> str:
    text = str(error).strip()
    name = type(error).__name__
    return f"{name}: {text}" if text and text != name else name
