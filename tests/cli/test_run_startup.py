"""`cronlease run` on the embedded Redis as a new user meets it: real processes, real servers.

A start-up that fails exits 2 with a sentence and leaves no redis-server behind that it started
itself; a clean stop leaves the embedded server running while a worker or any other client is
still connected to it, and shuts it down otherwise. Embedded servers are daemonized (not our
children), so the `config_path` fixture kills whatever the folder has after every test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis

from scheduler.store import embedded
from scheduler.store.embedded import data_dir_for, ensure_embedded_redis, socket_path_for
from scheduler.store.liveness import redis_process_alive
from scheduler.store.redisbin import SERVER_ENV
from tests.daemons import frozen_state
from tests.redis_server import free_port, wait_until
from tests.store.test_embedded import assert_nothing_started, kill_embedded, servers_using

REPO = Path(__file__).resolve().parents[2]
SCHEDULES = "schedules:\n  beat:\n    every: 1s\n    job: test.beat\n"
INJECTED = "start-up failed: failpoint start-up: injected connection error"


@pytest.fixture
def config_path(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    try:
        yield str(path)
    finally:
        kill_embedded(data_dir_for(str(path)))


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    # No CRONLEASE_* from outside (a URL there would skip the embedded mode under test).
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONLEASE_")}
    env.pop(SERVER_ENV, None)
    return {**env, **(extra or {})}


def command(config_path: str, args: Sequence[str]) -> list[str]:
    base = [sys.executable, "-m", "scheduler", "run", "--config", config_path, "--lease-ttl", "1s"]
    return [*base, *args]


def run(
    config_path: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(config_path, args),
        cwd=REPO,
        env=environment(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_no_server_left(data_dir: str) -> None:
    """Neither a process on the folder's redis.conf, nor the pidfile's pid, nor the socket."""
    pid_path = Path(data_dir, embedded.PID_NAME)
    pid = int(pid_path.read_text()) if pid_path.exists() else None
    wait_until(lambda: servers_using(data_dir) == [], 10)
    assert pid is None or not redis_process_alive(pid)
    assert not os.path.exists(socket_path_for(data_dir))


def assert_one_sentence(done: subprocess.CompletedProcess[str], sentence: str) -> None:
    assert done.returncode == 2, done.stderr
    assert f"cronlease run: {sentence}" in done.stderr
    assert "Traceback" not in done.stderr


class TestAFailedStartUp:
    @pytest.mark.parametrize("port", ["99999", "65536", "-1"])
    def test_a_port_out_of_range_exits_2_before_anything_starts(
        self, config_path: str, port: str
    ) -> None:
        done = run(config_path, "--metrics-port", port)

        assert_one_sentence(
            done,
            f"--metrics-port {port} is not a port: use 1..65535, or 0 to turn the HTTP server off",
        )
        assert_nothing_started(data_dir_for(config_path))

    def test_a_port_out_of_range_from_the_environment_is_the_same_sentence(
        self, config_path: str
    ) -> None:
        done = run(config_path, env={"CRONLEASE_METRICS_PORT": "99999"})

        assert_one_sentence(done, "--metrics-port 99999 is not a port")
        assert_nothing_started(data_dir_for(config_path))

    def test_a_taken_port_exits_2_before_anything_starts(self, config_path: str) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            done = run(config_path, "--metrics-host", "127.0.0.1", "--metrics-port", str(port))

        assert_one_sentence(
            done,
            f"cannot serve metrics on 127.0.0.1:{port} (Address already in use); pick another "
            "--metrics-port, or 0 to turn it off",
        )
        assert_nothing_started(data_dir_for(config_path))

    def test_a_failure_after_the_embedded_start_stops_the_server_it_started(
        self, config_path: str
    ) -> None:
        done = run(
            config_path, "--metrics-port", "0", env={"CRONLEASE_FAILPOINTS": "start-up=redis-error"}
        )

        assert_one_sentence(done, INJECTED)
        assert "(started it)" in done.stderr  # the failure really came after the start
        assert "start-up failed: stopping the embedded Redis this process started" in done.stderr
        assert "embedded redis-server shut down" in done.stderr
        assert_no_server_left(data_dir_for(config_path))

    def test_a_failure_leaves_a_server_it_only_joined_running(self, config_path: str) -> None:
        server = ensure_embedded_redis(config_path)  # another replica's, already running

        done = run(
            config_path, "--metrics-port", "0", env={"CRONLEASE_FAILPOINTS": "start-up=redis-error"}
        )

        assert_one_sentence(done, INJECTED)
        assert "(already running)" in done.stderr
        assert "stopping the embedded Redis" not in done.stderr
        assert redis_process_alive(server.pid)
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()


class Replica:
    """One `cronlease run` on the embedded Redis, its output in a file the test polls."""

    def __init__(self, config_path: str, log_path: Path, replica_id: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        args = ["--metrics-port", "0", "--replica-id", replica_id]
        self.process = subprocess.Popen(
            command(config_path, args),
            cwd=REPO,
            env=environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout_s: float = 15.0) -> None:
        def logged() -> bool:
            assert self.process.poll() is None, self.log()
            return text in self.log()

        wait_until(logged, timeout_s, 0.02)

    def stop(self) -> int:
        """SIGTERM: the clean stop; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log.close()


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        yield started
    finally:
        for replica in started:
            replica.kill()


class TestTheLastCleanStop:
    def start(self, started: list[Replica], config_path: str, tmp_path: Path) -> Replica:
        replica = Replica(config_path, tmp_path / f"r{len(started)}.log", f"r{len(started)}")
        started.append(replica)
        replica.wait_for("leading with fencing token")
        return replica

    def test_with_no_other_client_it_shuts_the_embedded_server_down(
        self, config_path: str, tmp_path: Path, replicas: list[Replica]
    ) -> None:
        replica = self.start(replicas, config_path, tmp_path)

        assert replica.stop() == 0

        assert "embedded redis-server shut down" in replica.log()
        assert_no_server_left(data_dir_for(config_path))

    def test_a_connected_worker_keeps_it_running_and_the_next_stop_without_it_shuts_it_down(
        self, config_path: str, tmp_path: Path, replicas: list[Replica]
    ) -> None:
        first = self.start(replicas, config_path, tmp_path)
        url = embedded.unix_url(socket_path_for(data_dir_for(config_path)))
        worker = redis.Redis.from_url(url, decode_responses=True)  # as README's worker connects
        assert worker.ping()
        pid = int(worker.info("server")["process_id"])

        assert first.stop() == 0

        assert "left running: 1 other client (unnamed, last command" in first.log()
        assert worker.ping()  # its connection survived the last replica's stop
        assert redis_process_alive(pid)
        worker.close()

        second = self.start(replicas, config_path, tmp_path)
        assert "(already running)" in second.log()
        assert second.stop() == 0
        assert "embedded redis-server shut down" in second.log()
        assert_no_server_left(data_dir_for(config_path))


def test_the_single_machine_mode_serves_http_on_loopback_only(
    config_path: str, tmp_path: Path
) -> None:
    # Before: 0.0.0.0 even here, where nothing off this machine has a reason to scrape or probe.
    port = free_port()
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command(config_path, ["--metrics-port", str(port)]),
            cwd=REPO,
            env=environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: "serving /metrics" in log_path.read_text(), 15, 0.02)
            assert f"on 127.0.0.1:{port}" in log_path.read_text()
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0


def test_with_a_redis_url_http_listens_on_every_interface(tmp_path: Path) -> None:
    from scheduler.cli.settings import Settings

    assert Settings(redis_url="redis://h:6379/0").metrics_bind == "0.0.0.0"
    assert Settings().metrics_bind == "127.0.0.1"
    assert Settings(metrics_host="10.0.0.5").metrics_bind == "10.0.0.5"


def test_a_sigterm_during_start_up_is_a_clean_stop(config_path: str, tmp_path: Path) -> None:
    # Before: the default action killed the process mid-start (exit -15) and left the embedded
    # Redis it had started running. The failpoint freezes it just after that start.
    log_path = tmp_path / "run.log"

    def stopped() -> bool:
        return frozen_state(process.pid) == "T"

    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command(config_path, ["--metrics-port", "0"]),
            cwd=REPO,
            env=environment({"CRONLEASE_FAILPOINTS": "start-up=stop"}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(stopped, 20, 0.02)
            process.send_signal(signal.SIGTERM)  # pending until it runs again
            process.send_signal(signal.SIGCONT)
            assert process.wait(timeout=20) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
    assert "received SIGTERM during start-up: stopping" in log_path.read_text()
    assert_no_server_left(data_dir_for(config_path))
