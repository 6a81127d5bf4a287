"""The page's own Redis client: made at its first request, shared by the server's threads."""

from __future__ import annotations

import threading

from redis import Redis

from scheduler.store.connection import Connector

# An operator's page waits on it: a Redis that does not answer within this is said to be down.
TIMEOUT_S = 2.0


class LazyClient:
    """Built on first use, because the embedded Redis starts after the HTTP port is bound; its
    connections are named `cronlease.web...` so the embedded server does not count them as a
    replica still using it (store/embedded.py counts `cronlease-` names)."""

    def __init__(self, connector: Connector, replica_id: str) -> None:
        self._connector = connector
        self._name = f"cronlease.web.{replica_id}"
        self._lock = threading.Lock()
        self._client: Redis | None = None

    def __call__(self) -> Redis:
        with self._lock:
            if self._client is None:
                self._client = self._connector(TIMEOUT_S, self._name)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
