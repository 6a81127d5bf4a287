"""Real redis-server processes for the tests: no fakes, no mocks.

Each RedisServer owns one process on 127.0.0.1 and one folder. Every live instance is tracked so
`kill_all()` (called at session end and at interpreter exit) leaves no server behind, and on Linux
the kernel kills a server whose test process dies without cleaning up (the "parent" there is the
starting thread: start servers from the main thread or from threads that outlive them).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.store.redisbin import find_redis_server

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.01
# The shared Redis of this machine; a test server must never land on it.
_FORBIDDEN_PORTS = frozenset({6379})

_live: set[RedisServer] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it is taken)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in _FORBIDDEN_PORTS:
            return port


def wait_until(
    condition: Callable[[], object], timeout_s: float = 5.0, interval_s: float = 0.01
) -> None:
    """Poll `condition` until it is truthy; AssertionError naming it after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            name = getattr(condition, "__name__", repr(condition))
            raise AssertionError(f"condition {name} still false after {timeout_s}s")
        time.sleep(interval_s)


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the test process dies, even by SIGKILL."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


class RedisServer:
    """One redis-server on 127.0.0.1:`port`, data in `directory`.

    `appendonly` turns the AOF on (with fsync always, so that a SIGKILL straight after a write
    loses nothing: tests that kill Redis assert on what it acknowledged). `extra_args` are
    appended to the command line, e.g. `["--maxmemory", "10mb"]`.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        binary: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.appendonly = appendonly
        self.extra_args = tuple(extra_args)
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.binary = binary or find_redis_server()
        self._process: subprocess.Popen[bytes] | None = None
        self._clients: list[redis.Redis] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        """Start and wait until it answers PING; a taken port is retried on a new one."""
        if self.is_running():
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            self._spawn()
            if self._wait_ready():
                return self
            if self._fixed_port:
                break
            # Another process grabbed the port between free_port() and the bind.
            self.port = free_port()
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self.log_tail()}")

    def stop(self) -> None:
        """A clean stop without an RDB save (the AOF, if on, is flushed by Redis itself)."""
        if not self.is_running():
            self._reap()
            return
        with contextlib.suppress(redis.RedisError):
            self._admin().shutdown(nosave=True)
        self._reap()

    def kill(self) -> None:
        """SIGKILL: the crash case. What Redis acknowledged is on disk only if AOF is on."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self._reap()

    def restart(self, down_s: float = 0.0) -> RedisServer:
        """Stop (if running), stay down for `down_s` (the outage being tested), and start again
        on the same port and folder, so the AOF reloads."""
        self.stop()
        self._fixed_port = True
        down_until = time.monotonic() + down_s
        while time.monotonic() < down_until:
            time.sleep(min(0.05, max(0.0, down_until - time.monotonic())))
        return self.start()

    def pause(self, ms: int) -> None:
        """CLIENT PAUSE ms ALL: every client, writes and reads, waits `ms` (a Redis freeze)."""
        self._admin().client_pause(ms, all=True)

    def client(self, **kwargs: object) -> redis.Redis:
        """A new client with decode_responses=True; closed when the server stops."""
        options: dict[str, object] = {"decode_responses": True, "socket_timeout": 5.0}
        options.update(kwargs)
        client = redis.Redis(host="127.0.0.1", port=self.port, **options)  # type: ignore[arg-type]
        self._clients.append(client)
        return client

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's stderr and log file, for error messages."""
        text = ""
        for path in (self.directory / "redis.stderr", self.log_path):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, dir={str(self.directory)!r}, pid={self.pid})"

    def _command(self) -> list[str]:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
        ]  # fmt: skip
        if self.appendonly:
            command += ["--appendfsync", "always"]
        return [*command, *self.extra_args]

    def _spawn(self) -> None:
        linux = sys.platform.startswith("linux")
        # Configuration errors go to stderr, not to the log file; keep them for the error.
        with open(self.directory / "redis.stderr", "ab") as stderr:
            self._process = subprocess.Popen(
                self._command(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                preexec_fn=_die_with_parent if linux else None,
            )
        _live.add(self)

    def _wait_ready(self) -> bool:
        """True once our process answers; False if it exited or the port answers for another."""
        process = self._process
        assert process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        probe = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    self._reap()
                    return False
                try:
                    answering_pid = int(probe.info("server")["process_id"])
                    if answering_pid != process.pid:
                        self.kill()  # lost a port race: someone else listens there
                        return False
                    # INFO answers while the AOF loads; PING only once the data is there.
                    return probe.ping() is True
                except (redis.BusyLoadingError, redis.ConnectionError):
                    time.sleep(_POLL_INTERVAL_S)
        finally:
            probe.close()
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} did not answer in time")

    def _admin(self) -> redis.Redis:
        # No retries: after SHUTDOWN the hang-up is the success, not something to retry.
        return self.client(retry=Retry(NoBackoff(), 0))

    def _reap(self) -> None:
        process = self._process
        if process is not None:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        self._forget()

    def _forget(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        _live.discard(self)


def kill_all() -> None:
    """SIGKILL every server still running: the last line of defence at session end."""
    for server in list(_live):
        server.kill()


atexit.register(kill_all)
