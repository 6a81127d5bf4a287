"""What the bench scripts share: a private redis-server, polling with deadlines, clean exits.

Not a test helper and not part of the package: the scripts in this folder import it by path
(`python bench/<script>.py` puts this folder first on sys.path).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType, TracebackType
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.store.redisbin import find_redis_server

T = TypeVar("T")

# The shared Redis of this machine: a bench server must never land on it.
FORBIDDEN_PORTS = frozenset({6379})
START_TIMEOUT_S = 10.0


class Timeout(Exception):
    """A polled condition did not come true before its deadline."""


def poll_until(
    condition: Callable[[], T | None], timeout_s: float, interval_s: float, what: str
) -> T:
    """Call `condition` every `interval_s` until it returns something truthy; return that.

    Raises Timeout naming `what` once `timeout_s` has passed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(f"{what}: still not true after {timeout_s:g}s")
        time.sleep(interval_s)


def exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C does, so every `with` block stops what it started."""

    def handle(signum: int, frame: FrameType | None) -> None:
        del frame
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handle)


def die_with_parent() -> None:
    """preexec_fn: on Linux the kernel SIGKILLs the child when this process dies, even by -9."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in FORBIDDEN_PORTS:
            return port


class RedisProcess:
    """A redis-server of our own on a free 127.0.0.1 port, in a temporary folder.

    No persistence unless `appendfsync` is given ("everysec" or "always"), which turns the AOF
    on. Killed and its folder removed on leaving the `with` block, whatever the reason.
    """

    def __init__(self, appendfsync: str | None = None) -> None:
        self.appendfsync = appendfsync
        self.binary = find_redis_server()
        self.port = 0
        self.directory = Path(tempfile.mkdtemp(prefix="cronlease-bench-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def persistence(self) -> str:
        return f"AOF, appendfsync {self.appendfsync}" if self.appendfsync else "no persistence"

    def __enter__(self) -> RedisProcess:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def client(self, **options: object) -> redis.Redis:
        settings: dict[str, object] = {"decode_responses": True, "socket_timeout": 10.0}
        settings.update(options)
        return redis.Redis(host="127.0.0.1", port=self.port, **settings)  # type: ignore[arg-type]

    def version(self) -> str:
        client = self.client()
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _command(self) -> list[str]:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self.appendfsync else "no",
        ]  # fmt: skip
        if self.appendfsync:
            command += ["--appendfsync", self.appendfsync]
        return command

    def _start(self) -> None:
        for _attempt in range(5):
            self.port = free_port()
            with open(self.directory / "redis.stderr", "ab") as stderr:
                self._process = subprocess.Popen(
                    self._command(),
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    start_new_session=True,  # a Ctrl-C reaches us, and we stop it
                    preexec_fn=die_with_parent,
                )
            if self._wait_ready():
                return
        raise RuntimeError(f"redis-server did not start; see {self.directory}")

    def _wait_ready(self) -> bool:
        """True once our own process answers PING; False if it died or lost a port race."""
        process = self._process
        assert process is not None
        probe = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )

        def answer() -> str | None:
            if process.poll() is not None:
                return "exited"
            try:
                pid = int(probe.info("server")["process_id"])
            except (redis.BusyLoadingError, redis.ConnectionError):
                return None
            return "ours" if pid == process.pid and probe.ping() else "someone else's"

        try:
            state = poll_until(answer, START_TIMEOUT_S, 0.01, f"redis-server on port {self.port}")
        finally:
            probe.close()
        if state != "ours":
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
            self._process = None
            return False
        return True


def add_aof_flag(parser: argparse.ArgumentParser) -> None:
    """`--aof [everysec|always]`: the value RedisProcess takes as `appendfsync`."""
    parser.add_argument(
        "--aof",
        nargs="?",
        const="everysec",
        choices=("everysec", "always"),
        help="turn the AOF on (appendfsync everysec, or the one named); default: no persistence",
    )


def parse_rfc3339(text: str) -> float:
    """`2026-11-22T02:00:00.004Z` (milliseconds optional) -> Unix seconds."""
    layout = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in text else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.strptime(text, layout).replace(tzinfo=timezone.utc).timestamp()


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Right-aligned columns, the first one left-aligned."""
    cells = [[str(cell) for cell in header], *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        lines.append("  ".join([first, *rest]).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def daemon_command(
    config: Path, redis_url: str, replica_id: str, ttl_s: float, *extra: str
) -> list[str]:
    """`python -m scheduler run` for one benchmarked replica (no metrics port: many run at once)."""
    return [
        sys.executable, "-m", "scheduler", "run",
        "--config", str(config),
        "--redis-url", redis_url,
        "--lease-ttl", f"{ttl_s:g}",
        "--replica-id", replica_id,
        "--metrics-port", "0",
        *extra,
    ]  # fmt: skip
