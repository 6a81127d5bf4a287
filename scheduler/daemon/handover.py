"""Listening for handover notices: a leader that released its lease says so on a channel, and a
follower campaigns at once instead of waiting for the lease to expire."""

from __future__ import annotations

import threading
from collections.abc import Callable

from scheduler.store.connection import REDIS_ERRORS, Backoff, Connector
from scheduler.store.lease import LeaseTiming


class HandoverListener:
    def __init__(
        self,
        connect: Connector,
        client_name: str,
        channel: str,
        timing: LeaseTiming,
        stopping: threading.Event,
        on_notice: Callable[[object], None],
    ) -> None:
        self._connect = connect
        self._client_name = client_name
        self._channel = channel
        self._timing = timing
        self._stopping = stopping
        self._on_notice = on_notice

    def start(self) -> None:
        threading.Thread(target=self._run, name="handover", daemon=True).start()

    def _run(self) -> None:
        backoff = Backoff(cap_s=self._timing.renew_interval_s)
        while not self._stopping.is_set():
            try:
                # Same name as the main client: both are this replica's own connections.
                client = self._connect(30.0, self._client_name)
                pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(self._channel)
                backoff.reset()
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_notice(message.get("data"))
            except REDIS_ERRORS:
                # The main loop reports Redis trouble; here we only retry quietly.
                self._stopping.wait(backoff.next_delay())
