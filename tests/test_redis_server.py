"""The test Redis helper itself: it must really persist, restart, pause and clean up."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis as redis_py

from tests.redis_server import RedisServer, free_port


def test_the_session_server_is_flushed_between_tests_part_1(redis: redis_py.Redis) -> None:
    redis.set("leftover", "1")


def test_the_session_server_is_flushed_between_tests_part_2(redis: redis_py.Redis) -> None:
    assert redis.get("leftover") is None


def test_acknowledged_writes_survive_a_kill_and_restart(fresh_redis_server: RedisServer) -> None:
    port = fresh_redis_server.port
    fresh_redis_server.client().set("acknowledged", "yes")

    fresh_redis_server.kill()
    fresh_redis_server.restart()

    assert fresh_redis_server.port == port
    assert fresh_redis_server.client().get("acknowledged") == "yes"


def test_without_aof_a_kill_loses_everything(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=False).start()
    try:
        server.client().set("volatile", "yes")
        server.kill()
        server.restart()
        assert server.client().get("volatile") is None
    finally:
        server.kill()


def test_pause_holds_every_client(fresh_redis_server: RedisServer) -> None:
    client = fresh_redis_server.client()
    fresh_redis_server.pause(100)

    began = time.monotonic()
    client.set("after-pause", "1")

    assert time.monotonic() - began >= 0.08


def test_extra_args_reach_the_server(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, extra_args=["--maxmemory", "12mb"]).start()
    try:
        assert server.client().config_get("maxmemory") == {"maxmemory": str(12 * 1024 * 1024)}
    finally:
        server.stop()
    assert not server.is_running()


def test_a_bad_option_fails_with_the_servers_words(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, extra_args=["--no-such-option", "1"], port=free_port())
    with pytest.raises(RuntimeError, match="no-such-option"):
        server.start()
    assert not server.is_running()
