"""Real `cronlease run` processes for black-box tests: start, signal, read their logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

from scheduler.store.keys import Keys
from tests.invariants import read_runs
from tests.redis_server import wait_until

KEYS = Keys("cronlease")
TTL_S = 1.0

# Runs the real CLI with the wall clock shifted: proves scheduling does not read it.
SKEWED_CLOCK = """
import sys, time
_offset = float(sys.argv.pop(1))
_time, _time_ns = time.time, time.time_ns
time.time = lambda: _time() + _offset
time.time_ns = lambda: _time_ns() + int(_offset * 1e9)
from scheduler.cli.main import main
sys.argv[0] = "cronlease"
raise SystemExit(main())
"""


class Daemon:
    """One replica as a subprocess; its stderr goes to a log file the test can read."""

    def __init__(
        self,
        replica_id: str,
        config: Path,
        redis_url: str,
        log_dir: Path,
        ttl_s: float = TTL_S,
        clock_offset_s: float | None = None,
        env: dict[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.replica_id = replica_id
        self.log_path = log_dir / f"{replica_id}.log"
        args = [
            "run",
            "--config",
            str(config),
            "--redis-url",
            redis_url,
            "--lease-ttl",
            str(ttl_s),
            "--replica-id",
            replica_id,
            "--metrics-port",
            "0",
            *extra_args,
        ]
        if clock_offset_s is None:
            command = [sys.executable, "-m", "scheduler", *args]
        else:
            command = [sys.executable, "-c", SKEWED_CLOCK, str(clock_offset_s), *args]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()/kill()
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float = 5.0) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, text: str) -> bool:
        return text in self.log()


def leader_of(client: redis.Redis) -> tuple[int, str] | None:
    value = client.get(KEYS.leader)
    if value is None:
        return None
    token, replica = str(value).split(":", 1)
    return int(token), replica


def wait_for_leader(client: redis.Redis, timeout_s: float = 10.0, other_than: str = "") -> str:
    found: list[str] = []

    def elected() -> bool:
        holder = leader_of(client)
        if holder is not None and holder[1] != other_than:
            found.append(holder[1])
            return True
        return False

    wait_until(elected, timeout_s, 0.005)
    return found[-1]


def stream_length(client: redis.Redis, queue: str = "default") -> int:
    return int(client.xlen(KEYS.queue(queue)))


def wait_for_runs(
    client: redis.Redis, count: int, timeout_s: float, queue: str = "default"
) -> None:
    def enough() -> bool:
        return stream_length(client, queue) >= count

    wait_until(enough, timeout_s, 0.02)


@contextmanager
def replicas(
    count: int, config: Path, redis_url: str, log_dir: Path, **kwargs: object
) -> Iterator[list[Daemon]]:
    daemons = [
        Daemon(f"r{i}", config, redis_url, log_dir, **kwargs)  # type: ignore[arg-type]
        for i in range(1, count + 1)
    ]
    try:
        yield daemons
    finally:
        for daemon in daemons:
            daemon.kill()


def monotonic_ms() -> float:
    return time.monotonic() * 1000


def latest_fires(client: redis.Redis) -> dict[str, int]:
    """Each schedule's latest fire time delivered to any stream."""
    latest: dict[str, int] = {}
    for run in read_runs(client):
        latest[run.schedule] = max(latest.get(run.schedule, 0), run.fire_ts)
    return latest


def wait_for_fires_past(
    client: redis.Redis, names: set[str], moment_s: float, timeout_s: float
) -> None:
    """Until every schedule in `names` has a run whose fire time is at or after `moment_s`."""

    def all_past() -> bool:
        latest = latest_fires(client)
        return set(latest) >= names and min(latest[n] for n in names) >= moment_s

    wait_until(all_past, timeout_s, 0.05)


def frozen_state(pid: int) -> str:
    """The process state letter from /proc: `T` when stopped."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]
