"""RabbitMQ: each run a persistent message, published with publisher confirms and `mandatory`.

What arrives (on queue `name:` through the default exchange, or on `exchange:` with
`routing_key:`, default the queue's name):
- body: a JSON object of the run, its fields as DESIGN's run table names them, each a string
  (fire_ts and token too), but `args`, the schedule's args as JSON (object: keyword arguments,
  array: positional ones): `{"run_id": "tick@2026-11-22T02:00:00Z", "schedule": "tick",
  "job": "report", "args": {"n": 1}, "queue": "jobs", "fire_time": "2026-11-22T02:00:00Z", ...}`;
- properties: message_id = the run id, type = the job, app_id "cronlease", content_type
  application/json, content_encoding utf-8, delivery_mode 2, timestamp = enqueued_at (seconds);
- headers: every field but args as `cronlease_<field>` (a headers exchange can route on them).

The guarantee: at-least-once. The broker confirms (basic.ack) a message once every queue it was
routed to has it, on disk if persistent and durable (RabbitMQ 3.10, "Consumer Acknowledgements
and Publisher Confirms"); only then does the relay acknowledge the outbox entry. Published
`mandatory`, a message no queue takes comes back (basic.return 312 NO_ROUTE, before its ack):
that run is refused, the error naming the exchange and routing key, and the relay retries it
loudly. Queues are never declared here: their consumers (or an operator) declare them durable;
`open()` warns when it is missing. RabbitMQ has no dedup by message_id: a run is published twice
when the relay dies between the confirm and the XACK, or the connection fails between a publish
and its confirm (the broker may have it); the relay offers those runs again, counted as
redelivered. A consumer can dedup on message_id.

A batch is published in one go and its confirms awaited together (as the confirms guide
advises: one fsync for many messages, ~20 times the throughput of a wait per message). One
channel keeps the publishes' order, so the confirmed PREFIX (base.py) is what the relay acks; a
run after a refused one may be in the queue already: offered again, it is counted as above.

Read from pika 1.4.4: BlockingChannel.confirm_delivery() waits for each message, so batches go
through the pika.channel.Channel it wraps (`_impl`: confirm_delivery(ack_nack_callback),
add_on_return_callback, basic_publish), BlockingConnection.process_data_events driving the I/O.
Every wait is bounded: connecting (socket and handshake timeouts, one attempt), a batch's
confirms, any reply (_bounded), TCP_USER_TIMEOUT for unacknowledged writes, and
blocked_connection_timeout (a broker's memory or disk alarm). AMQP heartbeats are off unless the
URL asks (`?heartbeat=30`: its options override these): the connection is serviced only while
delivering, so the broker would cut an idle relay off; TCP keepalive holds it, and one found dead
before a batch is reopened then. URLs are read as kombu reads them, so a Celery broker URL works
as written: `pyamqp://` is `amqp://`, `amqp://h//` is vhost "/" (pika would read "").
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from scheduler.core.queues import QueueSpec
from scheduler.core.timefmt import parse_instant
from scheduler.store.connection import redact
from scheduler.targets.relay.base import Delivered, OutboxRun, TargetUnavailable
from scheduler.targets.relay.secrets import resolve_url

TIMEOUT_S = 5.0  # connecting, and a batch's confirms
HEADER_PREFIX = "cronlease_"
# TCP keepalive holds an idle connection (AMQP heartbeats are off: see the module text).
_KEEPALIVE = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}


def _pika() -> Any:
    try:
        import pika  # type: ignore[import-untyped]
    except ImportError:
        raise TargetUnavailable("RabbitMQ needs pika: pip install 'cronlease[rabbitmq]'") from None
    return pika


def epoch_s(text: str) -> float:
    """RFC 3339 UTC (`2026-11-22T02:00:00.004Z`) -> Unix seconds; 0.0 when unreadable."""
    try:
        return parse_instant(text, timezone.utc).timestamp()
    except ValueError:
        return 0.0


def virtual_host(url: str) -> str:
    """kombu's reading of the vhost (kombu/utils/url.py url_to_parts): the path without its
    first slash, unquoted; none is "/"."""
    path = urlsplit(url).path
    return unquote(path[1:] if path.startswith("/") else path) or "/"


class RabbitDeliverer:
    """Runs -> one RabbitMQ queue (or exchange), confirmed by the broker."""

    def __init__(self, spec: QueueSpec, *, timeout_s: float = TIMEOUT_S) -> None:
        self.spec = spec
        self.exchange = str(spec.options.get("exchange") or "")
        self.routing_key = str(spec.options.get("routing_key") or spec.name)
        self._timeout_s = timeout_s
        self._where = "?"
        self._connection: Any = None
        self._channel: Any = None  # the pika.channel.Channel under the BlockingChannel
        self._published = 0  # publishes on this channel: the confirms' delivery tags
        self._settled: dict[int, bool] = {}  # delivery tag -> acked (True) or nacked
        self._unsettled: set[int] = set()  # delivery tags published, not confirmed yet
        self._returned: dict[str, str] = {}  # run id -> why the broker returned it
        self._channel_closed: str | None = None

    # --- what each message is (celery_amqp.py builds its own) ----------------------------------

    def message(self, run: OutboxRun) -> tuple[bytes, dict[str, Any]]:
        """The body and the BasicProperties keywords of a run's message (see the module text)."""
        fields = dict(run.fields)
        body = {name: run.args if name == "args" else value for name, value in fields.items()}
        headers = {HEADER_PREFIX + k: v for k, v in fields.items() if k != "args"}
        properties = dict(
            content_type="application/json", content_encoding="utf-8", delivery_mode=2,
            message_id=run.run_id, type=fields.get("job"), app_id="cronlease", headers=headers,
            timestamp=int(epoch_s(fields.get("enqueued_at", ""))),
        )  # fmt: skip
        return json.dumps(body, ensure_ascii=False).encode("utf-8"), properties

    # --- the Deliverer protocol ---------------------------------------------------------------

    def open(self) -> list[str]:
        self._connect()
        return self._check_route()

    def deliver(self, runs: Sequence[OutboxRun]) -> Delivered:
        messages, bad = [], None
        for run in runs:
            try:
                messages.append(self.message(run))
            except (ValueError, TypeError) as error:  # args that are not JSON, or not a list
                bad = f"run {run.run_id} cannot be made a message: {_describe(error)}"
                break
        runs = runs[: len(messages)]
        if not runs:
            return Delivered(0, error=bad)
        self._ensure_open()
        pika = _pika()
        first = self._published + 1
        self._returned.clear()
        try:
            for body, properties in messages:
                self._channel.basic_publish(
                    self.exchange, self.routing_key, body, pika.BasicProperties(**properties),
                    mandatory=True,
                )  # fmt: skip
                self._published += 1
                self._unsettled.add(self._published)
            self._wait(lambda: not self._unsettled)
        except pika.exceptions.AMQPChannelError as error:
            # Published onto a channel the broker had closed: its reason is in _channel_closed.
            if self._channel_closed is None:
                return self._outcome(runs, first, lost=f"channel failed: {_describe(error)}")
        except (pika.exceptions.AMQPConnectionError, OSError) as error:
            return self._outcome(runs, first, lost=f"connection lost: {_describe(error)}")
        result = self._outcome(runs, first)
        return result if bad is None or result.error else Delivered(result.confirmed, error=bad)

    def close(self) -> None:
        self._shut(self._timeout_s)

    def _shut(self, wait_s: float) -> None:
        """Close the connection: the AMQP close handshake, cut short after `wait_s` (0: a
        connection that failed or stopped answering is dropped at once)."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception), _bounded(connection, wait_s):
                connection.close()

    # --- confirms -----------------------------------------------------------------------------

    def _wait(self, done: Callable[[], bool]) -> bool:
        """Drive the I/O until `done()` or the channel closes; False after the timeout. The
        callbacks wake the wait at once (_wake), so it never sleeps past its reply."""
        deadline = time.monotonic() + self._timeout_s
        while not done() and self._channel_closed is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._connection.process_data_events(time_limit=left)
        return True

    def _wake(self) -> None:
        """End the current process_data_events: it returns once an event of the
        BlockingConnection is ready, and a timer of 0 s is one at its next turn."""
        if self._connection is not None:
            self._connection.call_later(0, lambda: None)

    def _prefix(self, runs: Sequence[OutboxRun], first: int) -> tuple[int, str | None]:
        """How many runs, from the first, the broker confirmed; why the next one was not."""
        for index, run in enumerate(runs):
            tag = first + index
            if run.run_id in self._returned:
                return index, self._returned[run.run_id]
            if tag not in self._settled:
                return index, None
            if not self._settled[tag]:
                return index, (
                    f"run {run.run_id} was refused by RabbitMQ at {self._where} (basic.nack: "
                    "an internal error of a queue it was routed to, or its queue's overflow "
                    "policy is reject-publish)"
                )
        return len(runs), None

    def _outcome(self, runs: Sequence[OutboxRun], first: int, lost: str | None = None) -> Delivered:
        """The confirmed prefix of the batch; the connection dropped when it failed (`lost`) or
        a confirm did not come in time, the channel reopened when the broker closed it."""
        confirmed, refused = self._prefix(runs, first)
        if lost is None and self._unsettled and self._channel_closed is None:
            lost = f"no confirm within {self._timeout_s:g} s for run {runs[confirmed].run_id}"
        self._forget()
        if lost is not None:
            self._shut(0.0)
        elif self._channel_closed is not None:  # e.g. 404 NOT_FOUND - no exchange 'x'
            reason = self._channel_closed
            self._reset_channel()
            if refused is None and confirmed < len(runs):
                refused = f"RabbitMQ at {self._where} closed the channel: {reason}"
        if refused is not None:
            return Delivered(confirmed, error=refused)
        if lost is None:
            return Delivered(confirmed)
        if confirmed == 0:
            raise TargetUnavailable(f"RabbitMQ at {self._where}: {lost}")
        return Delivered(confirmed, error=f"RabbitMQ at {self._where}: {lost}")

    def _forget(self) -> None:
        self._settled.clear()
        self._unsettled.clear()

    def _on_confirm(self, frame: Any) -> None:
        """basic.ack / basic.nack: of one delivery tag, or of every one up to it (multiple)."""
        method = frame.method
        tag = method.delivery_tag
        tags = [t for t in self._unsettled if t <= tag] if method.multiple else [tag]
        for settled in tags:
            self._settled[settled] = method.NAME == "Basic.Ack"
            self._unsettled.discard(settled)
        if not self._unsettled:
            self._wake()

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        headers: Mapping[str, Any] = properties.headers or {}
        run_id = str(headers.get(HEADER_PREFIX + "run_id", ""))
        self._returned[run_id] = (
            f"run {run_id} is unroutable: {self._route()} (basic.return {method.reply_code} "
            f"{method.reply_text}); declare the queue (durable) or fix the queue's name, "
            "exchange or routing_key in schedules.yaml; the run stays in the outbox"
        )

    def _on_channel_closed(self, _channel: Any, reason: Exception) -> None:
        self._channel_closed = _describe(reason)
        self._wake()

    # --- the connection -----------------------------------------------------------------------

    def _route(self) -> str:
        """Where runs go, as a sentence's end: why one did not arrive."""
        if self.exchange:
            return f"exchange {self.exchange!r} routes routing key {self.routing_key!r} to no queue"
        return f"the default exchange has no queue {self.routing_key!r}"

    def _parameters(self, url: str) -> Any:
        pika = _pika()
        scheme, sep, rest = url.partition("://")
        if sep and scheme.lower() == "pyamqp":  # kombu's name for py-amqp: the same AMQP 0-9-1
            url = f"amqp://{rest}"
        try:
            parameters = pika.URLParameters(url)
        except ValueError as error:
            raise TargetUnavailable(f"queue {self.spec.queue!r}: bad url: {error}") from None
        parameters.virtual_host = virtual_host(url)
        given = parse_qs(urlsplit(url).query)
        defaults: dict[str, Any] = {
            "socket_timeout": self._timeout_s,
            "stack_timeout": self._timeout_s,
            "blocked_connection_timeout": self._timeout_s,
            "connection_attempts": 1,
            "client_properties": {"connection_name": f"cronlease relay of queue {self.spec.queue}"},
            "heartbeat": 0,
            "tcp_options": {**_KEEPALIVE, "TCP_USER_TIMEOUT": int(self._timeout_s * 1000)},
        }
        for name, value in defaults.items():
            if name not in given:
                setattr(parameters, name, value)
        return parameters

    def _connect(self) -> None:
        self.close()
        pika = _pika()
        url = resolve_url(self.spec)
        self._where = redact(url)
        try:
            connection = pika.BlockingConnection(self._parameters(url))
        except TargetUnavailable:
            raise
        except Exception as error:  # AMQPError, OSError, the connection workflow's own errors
            # (AMQPConnectorStackTimeout: no handshake within stack_timeout) and the like
            raise TargetUnavailable(
                f"RabbitMQ at {self._where} unreachable: {_describe(error)}"
            ) from None
        self._connection = connection
        try:
            with _bounded(connection, self._timeout_s):
                self._open_channel()
        except (pika.exceptions.AMQPError, OSError, TargetUnavailable) as error:
            self._shut(0.0)
            if isinstance(error, TargetUnavailable):
                raise
            raise TargetUnavailable(
                f"RabbitMQ at {self._where}: cannot open a confirmed channel: {_describe(error)}"
            ) from None

    def _open_channel(self) -> None:
        channel = self._connection.channel()._impl
        self._channel, self._published, self._channel_closed = channel, 0, None
        self._forget()
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        selected: list[Any] = []

        def on_selected(frame: Any) -> None:
            selected.append(frame)
            self._wake()

        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=on_selected)
        if not self._wait(lambda: bool(selected)):
            raise TargetUnavailable(f"RabbitMQ at {self._where}: no confirm.select-ok")
        if self._channel_closed is not None:
            raise TargetUnavailable(f"RabbitMQ at {self._where}: {self._channel_closed}")

    def _reset_channel(self) -> None:
        try:
            self._open_channel()
        except Exception:  # the next deliver reconnects
            self._shut(0.0)

    def _ensure_open(self) -> None:
        """Before a batch: a connection the broker closed meanwhile (or never opened) is
        (re)opened now, when nothing of the batch is published yet."""
        pika = _pika()
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.process_data_events(time_limit=0)
                if self._channel is not None and self._channel.is_open:
                    return
            except (pika.exceptions.AMQPError, OSError):
                pass
        self._connect()

    def _check_route(self) -> list[str]:
        """Warnings: the queue (or exchange) runs are published to does not exist."""
        pika = _pika()
        try:
            with _bounded(self._connection, self._timeout_s):
                probe = self._connection.channel()
                if self.exchange:
                    probe.exchange_declare(self.exchange, passive=True)
                else:
                    probe.queue_declare(self.routing_key, passive=True)
                probe.close()
        except pika.exceptions.ChannelClosedByBroker as error:
            kind = "exchange" if self.exchange else "queue"
            name = self.exchange or self.routing_key
            return [
                f"queue {self.spec.queue!r}: RabbitMQ at {self._where} has no {kind} {name!r} "
                f"({error.reply_text}): its runs wait in the outbox, refused as unroutable, "
                "until it is declared (durable) by its consumers or an operator"
            ]
        except (pika.exceptions.AMQPError, OSError) as error:
            self._shut(0.0)
            raise TargetUnavailable(f"RabbitMQ at {self._where}: {_describe(error)}") from None
        return []


@contextlib.contextmanager
def _bounded(connection: Any, seconds: float) -> Iterator[None]:
    """Every blocking call of pika waits for its reply without a limit (a channel's open, a
    passive declare, the close handshake): within this block, a broker that has not answered
    after `seconds` has its TCP connection dropped, and the waiting call raises StreamLostError.
    pika 1.4's own heartbeat checker ends a dead connection the same way: a timer on the ioloop
    of the SelectConnection under the BlockingConnection (`_impl`) calls `_terminate_stream`."""
    pika = _pika()
    impl = connection._impl

    def drop() -> None:
        impl._terminate_stream(pika.exceptions.StreamLostError(f"no answer within {seconds:g} s"))

    timer = impl.ioloop.call_later(seconds, drop)
    try:
        yield
    finally:
        impl.ioloop.remove_timeout(timer)


def _describe(error: BaseException) -> str:
    """`Type: text`; pika's AMQPConnectionError has no text of its own, only its causes."""
    text = str(error) or ", ".join(repr(arg) for arg in error.args)
    if not text and error.__context__ is not None:
        text = repr(error.__context__)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
