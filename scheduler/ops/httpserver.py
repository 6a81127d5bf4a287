"""HTTP for probes and scrapes: /metrics, /healthz (the loop turns), /readyz (config + Redis).

Any other path goes to an optional web app (the status page, scheduler/web/): a function of a
`Request` that returns a `Reply`, or None for "not mine" (404).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import BaseRequestHandler

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class Request:
    method: str  # GET or POST
    path: str  # without the query string
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


WebApp = Callable[[Request], Reply | None]

# Probes and scrapes send their request at once and read a reply of at most a few hundred KB, so a
# socket that is silent (or does not read) for 5 s is not one of them; 5 s frees a slot well inside
# the kubelet's liveness window (10 s period x 3 failures) yet leaves a slow Prometheus link room.
IDLE_TIMEOUT_S = 5.0
# A pod sees a handful of concurrent clients (three kubelet probes, one or two Prometheus, an
# operator's curl); 32 leaves headroom while capping the threads an idle-connection flood can pin.
MAX_CONNECTIONS = 32

# The web app's POSTs (actions) carry no body worth the name; a bigger one is refused unread.
MAX_BODY_BYTES = 16 * 1024

_BUSY_BODY = b"busy: too many connections\n"
_BUSY_REPLY = (
    b"HTTP/1.0 503 Service Unavailable\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n\r\n" + _BUSY_BODY
)


class _BoundedHTTPServer(HTTPServer):
    """A thread per connection, at most `max_connections` at once; the rest are shed at accept."""

    # A burst of connects waits in the kernel's queue (capped by net.core.somaxconn) to be shed,
    # rather than outrunning the accept loop and having its SYNs dropped (retried after 1 s).
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseRequestHandler],
        max_connections: int,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        if not self._slots.acquire(blocking=False):
            self._shed(request)
            return
        thread = threading.Thread(
            target=self._serve, args=(request, client_address), name="probe-http", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # the process is out of threads: shed rather than stop accepting
            self._slots.release()
            self._shed(request)

    def _serve(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def _shed(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        assert isinstance(request, socket.socket)
        # Non-blocking: the accept loop must never wait on a client that neither sends nor reads.
        request.setblocking(False)
        with contextlib.suppress(OSError):
            request.send(_BUSY_REPLY)
            # Closing with unread bytes sends a reset, which can cost the client the 503.
            request.recv(65536)
        self.shutdown_request(request)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        # Timeouts and resets of clients are routine here; the default prints a traceback.
        log.debug("http: connection from %s failed", client_address, exc_info=True)


class ProbeServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        health: Probe,
        ready: Probe,
        *,
        app: WebApp | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            # StreamRequestHandler sets it on the socket: every read and write, not the request.
            timeout = idle_timeout_s

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._reply(200, encoder(server.registry), content_type)
                elif path in ("/healthz", "/livez"):
                    self._probe(server.health)
                elif path == "/readyz":
                    self._probe(server.ready)
                else:
                    self._app(b"")

            def do_POST(self) -> None:
                try:
                    size = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    size = -1
                if not 0 <= size <= MAX_BODY_BYTES:
                    self.close_connection = True  # the unread body must not become a request
                    self._reply(413, b"request body too large\n")
                    return
                self._app(self.rfile.read(size) if size else b"")

            def _app(self, body: bytes) -> None:
                path, _, query = self.path.partition("?")
                reply: Reply | None = None
                if server.app is not None:
                    request = Request(self.command, path, query, dict(self.headers.items()), body)
                    try:
                        reply = server.app(request)
                    except Exception:  # a bug in a page must not cost the probes their server
                        log.exception("http: %s %s failed", self.command, path)
                        reply = Reply(500, b"internal error: see the daemon's log\n")
                if reply is None:
                    pages = "/, /metrics" if server.app is not None else "/metrics"
                    text = f"not found: try {pages}, /healthz or /readyz\n"
                    reply = Reply(404, text.encode())
                self._reply(reply.status, reply.body, reply.content_type, reply.headers)

            def _probe(self, probe: Probe) -> None:
                ok, detail = probe()
                self._reply(200 if ok else 503, (detail + "\n").encode())

            def _reply(
                self,
                code: int,
                body: bytes,
                content_type: str = "text/plain",
                headers: tuple[tuple[str, str], ...] = (),
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self.registry = registry
        self.app = app
        self.health = health
        self.ready = ready
        # Raises OSError (e.g. address in use) here, at start-up, where the caller can say so.
        self._httpd = _BoundedHTTPServer((host, port), Handler, max_connections)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # shutdown() waits for serve_forever to return, which would be forever if it never ran
        # (a start-up that failed between binding the port and starting the thread).
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
