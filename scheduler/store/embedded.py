"""The embedded Redis: what `cronlease run` uses without a Redis URL (DESIGN "Embedded default").

A private, persistent redis-server lives in `.cronlease/` beside the config file and listens only
on a Unix socket there (no TCP). Every replica started from the same folder finds it by that
socket, so three terminals make a three-replica cluster on one machine. The server is
daemonized (its own session), so it outlives the replica that happened to start it, even a
SIGKILLed one: the others keep their shared state and lease.

Files in the data folder:

- `redis.sock`  the socket (or a short path in the temp dir when this one is too long for a socket)
- `redis.conf`  the configuration we start the server with, kept for operators
- `redis.pid`   written by the server
- `redis.log`   the server's log; start-up errors quote its tail
- `start.lock`  an flock held while a replica checks for and starts the server
- `server.json` which redis-server binary (path and version) last started on this folder
- the AOF and RDB files (`appendonly.aof` on Redis 6, `appendonlydir/` on Redis 7)

Which binary may start on the folder (and why another release line is refused) and the redis.conf
it starts with are serverrecord's; the last replica's stop of the server is embeddedstop's.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.store.liveness import redis_process_alive
from scheduler.store.serverrecord import choose_binary, write_conf

log = logging.getLogger(__name__)

DATA_DIR_NAME = ".cronlease"
SOCKET_NAME = "redis.sock"
CONF_NAME = "redis.conf"
PID_NAME = "redis.pid"
LOG_NAME = "redis.log"
LOCK_NAME = "start.lock"

# sun_path holds 108 bytes on Linux and 104 on macOS, both including the terminating NUL.
_MAX_SOCKET_PATH_BYTES = 100
_POLL_INTERVAL_S = 0.02
_LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class EmbeddedRedis:
    url: str
    socket_path: str
    data_dir: str
    pid: int
    started: bool  # True if this call started the server, False if it reused a running one
    server_path: str
    server_version: str

    @property
    def log_path(self) -> str:
        return os.path.join(self.data_dir, LOG_NAME)


@dataclass(frozen=True)
class _Answer:
    """What a running server says about itself in INFO."""

    pid: int
    version: str
    executable: str
    loading: bool = False  # still reading its AOF or RDB: commands get LOADING meanwhile


def data_dir_for(config_path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), DATA_DIR_NAME)


def socket_path_for(data_dir: str) -> str:
    """`<data_dir>/redis.sock`, or a temp-dir path derived from data_dir when that is too long.

    The fallback is a pure function of the data folder so every replica derives the same one.
    """
    path = os.path.join(data_dir, SOCKET_NAME)
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH_BYTES:
        return path
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"cronlease-{os.getuid()}-{digest}.sock")


def unix_url(socket_path: str) -> str:
    # redis-py unquotes the path, so a folder with spaces or '%' survives the round trip.
    return "unix://" + quote(socket_path)


def embedded_url(config_path: str) -> str:
    """The URL the embedded server of `config_path`'s folder has, running or not (no I/O)."""
    return unix_url(socket_path_for(data_dir_for(config_path)))


def ensure_embedded_redis(config_path: str, *, timeout_s: float = 10.0) -> EmbeddedRedis:
    """Reuse the embedded server of `config_path`'s folder, or start it; return how to reach it.

    Raises IncompatibleDataError (a RuntimeError) before starting anything if the folder's data
    was written by another Redis release line than the binary that would start now, and
    RuntimeError (with the tail of the server log when there is one) if no server answers
    within `timeout_s`.
    """
    data_dir = data_dir_for(config_path)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    socket_path = socket_path_for(data_dir)
    deadline = time.monotonic() + timeout_s

    running = _running_server(socket_path)
    if running is None:
        with _start_lock(data_dir, deadline):
            # Another replica may have started it while we waited for the lock.
            running = _running_server(socket_path) or _wait_for_live_server(
                data_dir, socket_path, deadline
            )
            if running is None:
                return _start(data_dir, socket_path, deadline)
    _wait_loaded(socket_path, running, deadline)
    log.info(
        "reusing embedded redis-server pid=%d binary=%s version=%s socket=%s",
        running.pid,
        running.executable,
        running.version,
        socket_path,
    )
    return EmbeddedRedis(
        unix_url(socket_path),
        socket_path,
        data_dir,
        running.pid,
        False,
        running.executable,
        running.version,
    )


def _start(data_dir: str, socket_path: str, deadline: float) -> EmbeddedRedis:
    binary = choose_binary(data_dir)
    pid = _start_server(data_dir, socket_path, deadline, binary.path)
    log.info(
        "started embedded redis-server pid=%d binary=%s version=%s socket=%s data_dir=%s",
        pid,
        binary.path,
        binary.version,
        socket_path,
        data_dir,
    )
    return EmbeddedRedis(
        unix_url(socket_path), socket_path, data_dir, pid, True, binary.path, binary.version
    )


def _running_server(socket_path: str) -> _Answer | None:
    """Who answers on `socket_path` (pid, version, binary), None if nothing answers."""
    try:
        mode = os.stat(socket_path)
    except FileNotFoundError:
        return None
    if mode.st_uid != os.getuid():
        raise RuntimeError(
            f"{socket_path} belongs to uid {mode.st_uid}, not to us (uid {os.getuid()}); "
            "refusing to use a Redis someone else controls"
        )
    client = redis.Redis(
        unix_socket_path=socket_path,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        # Probing must be quick and honest: redis-py's default retries would hide a dead socket.
        retry=Retry(NoBackoff(), 0),
    )
    try:
        # INFO, not PING: it also answers while the server is still loading its AOF. The
        # default sections hold both server (who) and persistence (loading), in one round trip.
        info = client.info()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return None
    except redis.ResponseError as error:
        raise RuntimeError(f"the Redis on {socket_path} answers, but not to us: {error}") from None
    finally:
        client.close()
    return _Answer(
        int(info["process_id"]),
        str(info["redis_version"]),
        str(info.get("executable", "?")),
        bool(int(info.get("loading", 0))),
    )


def _wait_loaded(socket_path: str, answer: _Answer, deadline: float) -> None:
    """Wait, until `deadline`, for a server that answers to finish loading its data: returned
    earlier, the caller's first command would get LOADING. Past the deadline it goes on anyway
    (a big AOF may take longer; every caller already waits out LOADING as Redis being away)."""
    while answer.loading and time.monotonic() < deadline:
        time.sleep(_POLL_INTERVAL_S)
        now = _running_server(socket_path)
        if now is None:
            return  # gone meanwhile: the caller's first command says so
        answer = now
    if answer.loading:
        log.warning("embedded redis-server pid=%d is still loading its data", answer.pid)


@contextmanager
def _start_lock(data_dir: str, deadline: float) -> Iterator[None]:
    path = os.path.join(data_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"timed out waiting for {path}: another cronlease process is starting "
                        "the embedded Redis and has not finished"
                    ) from None
                time.sleep(_POLL_INTERVAL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _wait_for_live_server(data_dir: str, socket_path: str, deadline: float) -> _Answer | None:
    """If the pidfile names a live redis-server, wait for it to answer; None if there is none.

    Starting a second server on the same AOF while a hung or stopped first one still holds it
    would corrupt the data, so a live but silent server is an error, not a reason to start.
    """
    pid_path = os.path.join(data_dir, PID_NAME)
    old_pid = _read_pid(pid_path)
    if old_pid is None or not redis_process_alive(old_pid):
        return None
    while time.monotonic() < deadline:
        running = _running_server(socket_path)
        if running is not None:
            return running
        if not redis_process_alive(old_pid):
            return None
        time.sleep(_POLL_INTERVAL_S)
    raise RuntimeError(
        f"redis-server pid {old_pid} (from {pid_path}) is running but does not answer on "
        f"{socket_path}; it may be stopped or hung. Stop it, or delete {pid_path} if that "
        "process is not the embedded Redis."
    )


def _start_server(data_dir: str, socket_path: str, deadline: float, server: str) -> int:
    pid_path = os.path.join(data_dir, PID_NAME)
    log_path = os.path.join(data_dir, LOG_NAME)
    # Leftovers of a server that died without cleaning up: the pidfile would make us mistake
    # the dead pid for our new server, and a stale socket file blocks the bind.
    _remove_if_exists(pid_path)
    if os.path.lexists(socket_path):
        if not stat.S_ISSOCK(os.lstat(socket_path).st_mode):
            raise RuntimeError(f"{socket_path} exists and is not a socket; move it away")
        os.unlink(socket_path)

    conf_path = os.path.join(data_dir, CONF_NAME)
    write_conf(conf_path, data_dir, socket_path, pid_path, log_path)
    try:
        # With `daemonize yes` this process forks the server and exits at once; a non-zero exit
        # means the configuration was refused before the fork.
        launcher = subprocess.run(
            [server, conf_path],
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=max(deadline - time.monotonic(), 1.0),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _start_error(f"{server} did not daemonize in time", log_path) from None
    if launcher.returncode != 0:
        output = (launcher.stderr + launcher.stdout).strip()
        raise _start_error(f"{server} exited with status {launcher.returncode}: {output}", log_path)

    while True:
        running = _running_server(socket_path)
        if running is not None:
            _wait_loaded(socket_path, running, deadline)
            return running.pid
        new_pid = _read_pid(pid_path)
        if new_pid is not None and not redis_process_alive(new_pid):
            raise _start_error(f"{server} (pid {new_pid}) exited during start-up", log_path)
        if time.monotonic() >= deadline:
            raise _start_error(f"{server} did not answer on {socket_path} in time", log_path)
        time.sleep(_POLL_INTERVAL_S)


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None  # absent, or caught half-written


def _remove_if_exists(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _start_error(message: str, log_path: str) -> RuntimeError:
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            tail = handle.readlines()[-_LOG_TAIL_LINES:]
    except OSError:
        tail = []
    detail = "".join(tail).rstrip() or "(the log is empty)"
    return RuntimeError(
        f"could not start the embedded Redis: {message}\nlast lines of {log_path}:\n{detail}"
    )
