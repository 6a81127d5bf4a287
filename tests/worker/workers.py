"""Real `cronlease worker` processes for the worker tests, and runs written as the leader does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from scheduler.store.keys import Keys
from tests.worker.jobs_under_test import EVENTS

ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys("cronlease")
JOBS_MODULE = "tests.worker.jobs_under_test"


class WorkerProcess:
    """One `python -m scheduler worker` with a short visibility timeout; log in a file."""

    def __init__(
        self,
        name: str,
        redis_url: str,
        log_dir: Path,
        *args: str,
        config: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        command = [
            sys.executable, "-m", "scheduler", "worker",
            "--import", JOBS_MODULE,
            "--redis-url", redis_url,
            "--replica-id", name,
            "--metrics-port", "0",
            "--visibility-timeout", "1s",
            "--config", str(config or log_dir / "no-schedules.yaml"),
            *args,
        ]  # fmt: skip
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()/kill()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TEST_REDIS_URL": redis_url},
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout_s: float = 10.0) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def enqueue(
    client: redis.Redis,
    job: str,
    args: Any = None,
    *,
    queue: str = "default",
    run_id: str | None = None,
    trigger: str = "scheduled",
) -> str:
    """XADD a run with the fields the leader writes; its run id."""
    fire_ts = int(time.time())
    run_id = run_id or f"{job}@{time.time_ns()}"
    client.xadd(
        KEYS.queue(queue),
        {
            "run_id": run_id,
            "schedule": job.replace(".", "-"),
            "job": job,
            "args": json.dumps({} if args is None else args),
            "queue": queue,
            "fire_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fire_ts)),
            "fire_ts": str(fire_ts),
            "enqueued_at": f"{time.time():.3f}",
            "trigger": trigger,
            "token": "1",
            "replica": "test",
        },
    )
    return run_id


def events(client: redis.Redis, event: str | None = None) -> list[dict[str, Any]]:
    found = [json.loads(text) for text in client.lrange(EVENTS, 0, -1)]
    return [e for e in found if event is None or e["event"] == event]


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args, "--redis-url", redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def start(count: int, redis_url: str, log_dir: Path, *args: str) -> list[WorkerProcess]:
    return [WorkerProcess(f"w{i}", redis_url, log_dir, *args) for i in range(1, count + 1)]


def stop_all(workers: Sequence[WorkerProcess]) -> None:
    for worker in workers:
        worker.kill()
