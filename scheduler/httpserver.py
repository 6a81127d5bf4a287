"""HTTP for probes and scrapes: /metrics, /healthz (the loop turns), /readyz (config + Redis)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, str]]


class ProbeServer:
    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, health: Probe, ready: Probe
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
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
                    self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

            def _probe(self, probe: Probe) -> None:
                ok, detail = probe()
                self._reply(200 if ok else 503, (detail + "\n").encode())

            def _reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self.registry = registry
        self.health = health
        self.ready = ready
        # Raises OSError (e.g. address in use) here, at start-up, where the caller can say so.
        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
