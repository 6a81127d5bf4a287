"""A REAL `rq worker` (rq 2.12.0, from tests/targets/workers/rq) for the tests that need one:
started in its own process group, its executions read from the record file each job appends to
(tests/targets/workers/rq/rqjobs.py), stopped warm (SIGTERM) at the end.

Shared by test_rq.py (the RQ target through failovers) and test_operator.py (`trigger`,
`backfill` and the page's "trigger now" into a target's queue).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from scheduler.targets.runid import decode_run_id
from tests.redis_server import RedisServer, wait_until
from tests.targets.workers import (
    RecordedWorker,
    launch,
    stop_group,
    url_with_db,
    venv_bin,
    wait_ready,
    worker_dir,
)

__all__ = ["Worker", "start_rq_worker", "url_with_db"]

START_TIMEOUT_S = 20.0


class Worker(RecordedWorker):
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.raw_lines()]

    def executed(self) -> list[str]:
        return [decode_run_id(line["id"]) for line in self.lines()]

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
    supervised: bool = False,
) -> Iterator[Worker]:
    """A generator for a fixture: yields the started worker, stops it when resumed.

    `supervised`: restarted whenever it exits, as systemd's Restart=always or a Kubernetes pod
    would. For tests that restart the worker's own Redis: `rq worker` retries a lost connection
    only while it waits for a job; one lost anywhere else (a heartbeat, the job's own bookkeeping)
    makes it log "found an unhandled exception, quitting" and exit, by RQ's design."""
    rq = venv_bin("rq", "rq")
    record, log = folder / "executed.jsonl", folder / "worker.log"
    env = {**os.environ, "CRONLEASE_EXECUTED": str(record)}
    command = [str(rq), "worker", "-u", url_with_db(redis_server, db), *queues]
    if serializer:
        command += ["--serializer", serializer]
    if supervised:
        # The loop shares the worker's process group, so stop_group ends both.
        loop = 'while :; do "$@"; echo "rq worker exited ($?), restarting"; sleep 0.5; done'
        command = ["sh", "-c", loop, "sh", *command]
    started = Worker(launch(command, worker_dir("rq"), env, log), record, log)
    try:
        wait_ready(started, "Listening on", "rq worker", START_TIMEOUT_S)
        yield started
    finally:
        stop_group(started.process)
