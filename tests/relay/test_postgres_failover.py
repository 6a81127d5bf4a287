"""PostgreSQL through the relay, end to end: three replicas, the leader SIGKILLed twice, the target
out once (tests/targets/harness.py), and the runs read back by their REAL consumer.

- mode table, PostgreSQL itself stopped and started again (pg_ctlcluster): a reader that
  CONSUMES the rows (`DELETE ... RETURNING`, as a queue reader does), so a run written twice
  would be read twice even though the table's run_id is unique: only the ledger prevents it.
- mode procrastinate, the relay's port blocked (a forwarder that swallows everything, as a
  frozen server or a firewall DROP looks) while the Procrastinate worker keeps its own direct
  connection: what the worker executed, nothing lost, nothing twice.
The schema is made by `cronlease migrate --config F`, the command the relay's error names.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_py

from tests.redis_server import RedisServer
from tests.relay.test_postgres import (
    Database,
    PortBlocker,
    apply_procrastinate_schema,
    postgres_cluster,
    postgres_url,
    procrastinate_worker,
    scratch_schema,
    start_postgres,
    stop_postgres,
)
from tests.targets.harness import prove_exactly_once_through_failover

URL_VARIABLE = "CRONLEASE_TEST_PG_URL"


@pytest.fixture
def scratch() -> Iterator[Database]:
    with scratch_schema(postgres_url()) as database:
        yield database


def queue_yaml(mode: str) -> str:
    return textwrap.dedent(
        f"""
        target: postgres
        url: ${{{URL_VARIABLE}}}
        mode: {mode}
        """
    )


def cronlease_migrate(tmp_path: Path, mode: str, url: str) -> str:
    config = tmp_path / "migrate.yaml"
    config.write_text(
        "queues:\n  jobs:\n"
        + textwrap.indent(queue_yaml(mode).strip(), "    ")
        + "\nschedules:\n  tick-a: {every: 1s, job: record, queue: jobs}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "migrate", "--config", str(config)],
        env={**os.environ, URL_VARIABLE: url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class ConsumingReader:
    """A table-mode consumer: takes the rows it has not read, deleting them, in id order."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: psycopg.Connection[Any] | None = None
        self.read: list[str] = []

    def __call__(self) -> list[str]:
        try:
            if self._connection is None:
                self._connection = psycopg.connect(self._url, autocommit=True, connect_timeout=2)
            rows = self._connection.execute(
                "DELETE FROM cronlease_runs WHERE id IN (SELECT id FROM cronlease_runs "
                "ORDER BY id FOR UPDATE SKIP LOCKED) RETURNING id, run_id"
            ).fetchall()
            self.read += [run_id for _, run_id in sorted(rows)]
        except psycopg.Error:  # PostgreSQL is down: read again once it is back
            self.close()
        return self.read

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def test_table_mode_through_failover_and_a_postgres_restart_nothing_lost_nothing_twice(
    redis: redis_py.Redis, redis_server: RedisServer, scratch: Database, tmp_path: Path
) -> None:
    postgres_cluster()  # skips without root / pg_ctlcluster
    assert "table cronlease_runs ready" in cronlease_migrate(tmp_path, "table", scratch.url)
    reader = ConsumingReader(scratch.url)
    try:
        proof = prove_exactly_once_through_failover(
            redis_server,
            tmp_path,
            queue_yaml("table"),
            "record",
            reader,
            outage=(stop_postgres, start_postgres),
            env={URL_VARIABLE: scratch.url},
        )
    finally:
        reader.close()
    assert len(proof.executed) >= 12
    # Every run the reader consumed is in the ledger, once; and the relays said they retried.
    [(ledger,)] = scratch.query("SELECT count(*) FROM cronlease_delivered")
    assert ledger == len(proof.executed)
    logs = "".join(path.read_text() for path in proof.log_dir.glob("*.log"))
    assert "could not take" in logs, "the outage never reached the relay"


def test_procrastinate_mode_through_failover_and_a_blocked_port_into_a_real_worker(
    redis: redis_py.Redis, redis_server: RedisServer, scratch: Database, tmp_path: Path
) -> None:
    apply_procrastinate_schema(scratch.url)
    assert "ledger cronlease_delivered ready" in cronlease_migrate(
        tmp_path, "procrastinate", scratch.url
    )
    blocker = PortBlocker()
    try:
        with procrastinate_worker(scratch.url, "jobs", tmp_path) as worker:
            proof = prove_exactly_once_through_failover(
                redis_server,
                tmp_path,
                queue_yaml("procrastinate"),
                "record",
                worker.executed,
                outage=(blocker.block, blocker.unblock),
                env={URL_VARIABLE: blocker.url(scratch.url)},
            )
            lines = worker.lines()
    finally:
        blocker.close()
    assert len(proof.executed) >= 12
    # Each ran with the schedule's args as its kwargs, on the queue named like the cronlease one.
    assert {(fields[2], fields[3]) for fields in lines} == {('{"n": 1}', "jobs")}
    logs = "".join(path.read_text() for path in proof.log_dir.glob("*.log"))
    assert "could not take" in logs, "the blocked port never reached the relay"
