"""Shared fixtures: real redis-server processes (see tests/redis_server.py).

- `redis`: a client of the session's server, flushed before the test. The default choice.
- `redis_server`: that session server itself (for its url/port, or a second client).
- `fresh_redis_server`: a server of the test's own, AOF on, for tests that kill, restart or
  pause Redis. Killed when the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py

from tests.redis_server import RedisServer, kill_all


@pytest.fixture(scope="session", autouse=True)
def _no_redis_server_survives_the_session() -> Iterator[None]:
    yield
    kill_all()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    # No AOF: this one is flushed before every test, so nothing on it is meant to last.
    server = RedisServer(tmp_path_factory.mktemp("redis-session"), appendonly=False)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[redis_py.Redis]:
    # A test that stopped the shared server must not break the ones after it.
    redis_server.start()
    client = redis_server.client()
    client.client_unpause()
    client.flushall()
    client.script_flush()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fresh_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.kill()
