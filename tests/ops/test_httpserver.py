"""The probe server under idle and half-sent connections: real sockets on 127.0.0.1, no mocks."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from scheduler.ops.httpserver import MAX_CONNECTIONS, Probe, ProbeServer
from tests.redis_server import wait_until

HOST = "127.0.0.1"
BUSY = "busy: too many connections\n"


def healthy() -> tuple[bool, str]:
    return True, "loop turned 0.1s ago"


def unready() -> tuple[bool, str]:
    return False, "redis unreachable"


StartServer = Callable[..., ProbeServer]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    servers: list[ProbeServer] = []

    def start(
        registry: CollectorRegistry | None = None,
        health: Probe = healthy,
        ready: Probe = healthy,
        **limits: float,
    ) -> ProbeServer:
        server = ProbeServer(HOST, 0, registry or CollectorRegistry(), health, ready, **limits)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    """Sockets a test opens; closed at the end whatever the server did with them."""
    opened: list[socket.socket] = []
    yield opened
    for client in opened:
        client.close()


def connect(port: int, clients: list[socket.socket], count: int) -> list[socket.socket]:
    new = [socket.create_connection((HOST, port), timeout=5) for _ in range(count)]
    clients.extend(new)
    return new


def closed_by_server(client: socket.socket) -> bool:
    """True once the server closed it (EOF or reset); reads and drops any reply on the way."""
    client.setblocking(False)
    try:
        while True:
            if not client.recv(4096):
                return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def handler_threads() -> int:
    return sum(t.name == "probe-http" for t in threading.enumerate())


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body); (0, "") when the server reset the connection instead of answering."""
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read().decode()
    except ConnectionError:
        return 0, ""
    finally:
        connection.close()


def test_300_idle_connections_are_all_dropped_and_their_threads_end(
    start_server: StartServer, clients: list[socket.socket]
) -> None:
    server = start_server(idle_timeout_s=1.0)
    threads_before = threading.active_count()
    still_open = set(connect(server.port, clients, 300))
    peak = 0

    def all_closed() -> bool:
        nonlocal peak
        peak = max(peak, handler_threads())
        still_open.difference_update([c for c in still_open if closed_by_server(c)])
        return not still_open

    wait_until(all_closed, timeout_s=5)
    assert 0 < peak <= MAX_CONNECTIONS
    wait_until(lambda: handler_threads() == 0, timeout_s=2)
    assert threading.active_count() <= threads_before


def test_a_half_sent_request_is_dropped_after_the_idle_timeout(
    start_server: StartServer, clients: list[socket.socket]
) -> None:
    server = start_server(idle_timeout_s=0.5)
    (client,) = connect(server.port, clients, 1)
    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow")
    wait_until(lambda: closed_by_server(client), timeout_s=3)
    wait_until(lambda: handler_threads() == 0, timeout_s=2)


def test_probes_over_the_bound_get_a_quick_503_then_200_once_idle_ones_time_out(
    start_server: StartServer, clients: list[socket.socket]
) -> None:
    server = start_server(idle_timeout_s=2.0)
    held = connect(server.port, clients, MAX_CONNECTIONS + 8)
    wait_until(lambda: handler_threads() == MAX_CONNECTIONS, timeout_s=2)

    assert get(server.port, "/healthz") == (503, BUSY)
    # Answered by the accept loop while every slot is still held, not after a timeout.
    assert not closed_by_server(held[0])
    assert handler_threads() == MAX_CONNECTIONS

    wait_until(lambda: get(server.port, "/healthz")[0] == 200, timeout_s=5)
    wait_until(lambda: all(closed_by_server(c) for c in held), timeout_s=2)


def test_metrics_healthz_and_readyz_answer_as_before(start_server: StartServer) -> None:
    registry = CollectorRegistry()
    Counter("cronlease_probe_test_total", "A test counter.", registry=registry).inc()
    server = start_server(registry, health=healthy, ready=unready)

    status, body = get(server.port, "/metrics")
    assert status == 200
    assert "cronlease_probe_test_total 1.0" in body
    assert get(server.port, "/healthz") == (200, "loop turned 0.1s ago\n")
    assert get(server.port, "/livez") == (200, "loop turned 0.1s ago\n")
    assert get(server.port, "/healthz?verbose=1") == (200, "loop turned 0.1s ago\n")
    assert get(server.port, "/readyz") == (503, "redis unreachable\n")
    assert get(server.port, "/nope") == (404, "not found: try /metrics, /healthz or /readyz\n")
