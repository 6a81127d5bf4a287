"""The daemon speaks systemd's notify protocol to a socket of the test's own."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py

from tests.daemons import Daemon, wait_for_leader
from tests.redis_server import RedisServer

SCHEDULES = """
schedules:
  beat:
    every: 1s
    job: test.beat
"""


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.1)
    yield sock
    sock.close()


def receive_until(sock: socket.socket, wanted: str, timeout_s: float = 10.0) -> list[str]:
    """Datagrams until one contains `wanted` (each datagram is one notification)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        seen.append(message)
        if wanted in message.splitlines():
            return seen
    raise AssertionError(f"no {wanted!r} within {timeout_s}s; got {seen}")


def test_ready_watchdog_reloading_and_stopping(
    redis_server: RedisServer,
    redis: redis_py.Redis,
    notify_socket: socket.socket,
    tmp_path: Path,
) -> None:
    config = tmp_path / "schedules.yaml"
    config.write_text(SCHEDULES)
    daemon = Daemon(
        "sd",
        config,
        redis_server.url,
        tmp_path,
        env={"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "400000"},
    )
    try:
        seen = receive_until(notify_socket, "READY=1")
        wait_for_leader(redis)
        seen += receive_until(notify_socket, "WATCHDOG=1")
        seen += receive_until(notify_socket, "WATCHDOG=1")  # it keeps coming, at half the interval
        assert any(m.startswith("STATUS=leading since") for m in seen), seen

        daemon.signal(signal.SIGHUP)
        reload = receive_until(notify_socket, "READY=1")
        reloading = [m for m in reload if "RELOADING=1" in m.splitlines()]
        assert reloading and "MONOTONIC_USEC=" in reloading[0]

        daemon.signal(signal.SIGTERM)
        receive_until(notify_socket, "STOPPING=1")
        assert daemon.wait(5) == 0
    finally:
        daemon.kill()


def test_watchdog_is_silent_when_watchdog_pid_is_another_process(
    redis_server: RedisServer,
    redis: redis_py.Redis,
    notify_socket: socket.socket,
    tmp_path: Path,
) -> None:
    config = tmp_path / "schedules.yaml"
    config.write_text(SCHEDULES)
    daemon = Daemon(
        "sd2",
        config,
        redis_server.url,
        tmp_path,
        env={
            "NOTIFY_SOCKET": notify_socket.getsockname(),
            "WATCHDOG_USEC": "200000",
            "WATCHDOG_PID": "1",
        },
    )
    try:
        receive_until(notify_socket, "READY=1")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                assert "WATCHDOG=1" not in notify_socket.recv(4096).decode().splitlines()
            except TimeoutError:
                continue
    finally:
        daemon.kill()
