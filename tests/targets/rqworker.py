"""A REAL `rq worker` (rq 2.12.0, from tests/targets/workers/rq) for the tests that need one:
started in its own process group, its executions read from the record file each job appends to
(tests/targets/workers/rq/rqjobs.py), stopped warm (SIGTERM) at the end.

Shared by test_rq.py (the RQ target through failovers) and test_operator.py (`trigger`,
`backfill` and the page's "trigger now" into a target's queue).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from scheduler.targets.runid import decode_run_id
from tests.redis_server import RedisServer, wait_until
from tests.targets.workers import venv_bin, worker_dir

START_TIMEOUT_S = 20.0


def url_with_db(server: RedisServer, db: int) -> str:
    return f"{server.url.rsplit('/', 1)[0]}/{db}"


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], record: Path, log: Path) -> None:
        self.process = process
        self.record = record
        self.log = log

    def lines(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def executed(self) -> list[str]:
        return [decode_run_id(line["id"]) for line in self.lines()]

    def reset(self) -> None:
        self.record.write_text("")

    def log_tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        def ran() -> bool:
            assert self.process.poll() is None, f"rq worker exited:\n{self.log_tail()}"
            return len(self.lines()) >= count

        try:
            wait_until(ran, 15, 0.05)
        except AssertionError:
            raise AssertionError(f"ran {self.lines()}\n{self.log_tail()}") from None
        return self.lines()


def start_rq_worker(
    redis_server: RedisServer,
    folder: Path,
    db: int,
    serializer: str | None,
    queues: Sequence[str] = ("jobs",),
) -> Iterator[Worker]:
    """A generator for a fixture: yields the started worker, stops it when resumed."""
    rq = venv_bin("rq", "rq")
    record, log = folder / "executed.jsonl", folder / "worker.log"
    env = {**os.environ, "CRONLEASE_EXECUTED": str(record)}
    command = [str(rq), "worker", "-u", url_with_db(redis_server, db), *queues]
    if serializer:
        command += ["--serializer", serializer]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=worker_dir("rq"), env=env, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    started = Worker(process, record, log)
    try:

        def ready() -> bool:
            assert process.poll() is None, f"rq worker exited:\n{started.log_tail()}"
            return "Listening on" in started.log_tail()

        wait_until(ready, START_TIMEOUT_S, 0.05)
        yield started
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (SIGTERM) of the process group this module started; SIGKILL if it hangs."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
