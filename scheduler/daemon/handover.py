"""Listening for notices on pub/sub: a leader that released its lease says so on the handover
channel, and a follower campaigns at once instead of waiting for the lease to expire; operator
commands that write runs without the leader announce them on the events channel (see events.py).
One thread and one connection serve every channel."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from scheduler.store.connection import REDIS_ERRORS, Backoff, Connector
from scheduler.store.lease import LeaseTiming

log = logging.getLogger("scheduler.daemon")

OnNotice = Callable[[object], None]


class NoticeListener:
    def __init__(
        self,
        connect: Connector,
        client_name: str,
        handlers: Mapping[str, OnNotice],
        timing: LeaseTiming,
        stopping: threading.Event,
    ) -> None:
        self._connect = connect
        self._client_name = client_name
        self._handlers = dict(handlers)  # channel -> what to do with a message's data
        self._timing = timing
        self._stopping = stopping

    def start(self) -> None:
        threading.Thread(target=self._run, name="notices", daemon=True).start()

    def _run(self) -> None:
        backoff = Backoff(cap_s=self._timing.renew_interval_s)
        while not self._stopping.is_set():
            try:
                # Same name as the main client: both are this replica's own connections.
                client = self._connect(30.0, self._client_name)
                # Through Any: redis-py types pubsub() from 8.2 on, not before (>= 6 supported).
                pubsub = cast(Any, client).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(*self._handlers)
                backoff.reset()
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
            except REDIS_ERRORS:
                # The main loop reports Redis trouble; here we only retry quietly. Notices sent
                # meanwhile are missed: a handover is then noticed at lease expiry, an operator
                # notice is only a log line (the run itself is in its stream).
                self._stopping.wait(backoff.next_delay())

    def _dispatch(self, message: Mapping[str, object]) -> None:
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        handler = self._handlers.get(str(channel))
        if handler is None:
            return
        try:
            handler(message.get("data"))
        except Exception:
            # A bug in one notice's handling must not end the thread: handovers ride on it.
            log.exception("could not handle a notice on %s", channel)
