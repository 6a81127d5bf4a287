"""PostgreSQL target: PostgresDeliverer against the real PostgreSQL (database `test`).

Each test works in a schema of its own (the URL's search_path), dropped afterwards. Proven here:
the schema is made only by `migrate` and `open()` names the command when it is missing; rows
arrive in batch order with the run's fields typed; the ledger makes a re-delivery a counted
no-op (even after a reader consumed the rows, and between two relays delivering the same batch
at once); a run PostgreSQL refuses confirms the prefix before it; a blocked port and a
PostgreSQL restart surface as TargetUnavailable within seconds and the next deliver confirms;
mode procrastinate: a REAL Procrastinate worker (procrastinate 3.10.0, from
tests/targets/workers/procrastinate) runs each run once, with its run id and kwargs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import psycopg
import pytest

from scheduler.core.queues import QueueSpec
from scheduler.targets.relay.base import Delivered, OutboxRun, TargetUnavailable
from scheduler.targets.relay.postgres import (
    CONNECT_TIMEOUT_S,
    DEADLINE_S,
    SESSION,
    MigrationFailed,
    PostgresDeliverer,
    SchemaMissing,
    migrate,
    migrate_sql,
)
from scheduler.targets.relay.secrets import SecretMissing
from tests.redis_server import free_port, wait_until
from tests.targets.workers import stop_group, venv_bin, worker_dir

PG_URL = os.environ.get("CRONLEASE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
FIRST_TS = 1_795_312_800
START_TIMEOUT_S = 20.0


def _reachable() -> str | None:
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as error:
        return (
            f"PostgreSQL is not reachable at {PG_URL} ({str(error).strip()[:120]}): install and "
            "start PostgreSQL 15 (apt-get install postgresql) with trust auth on 127.0.0.1 and a "
            "database `test`, or set CRONLEASE_TEST_POSTGRES_URL"
        )
    return None


def postgres_url() -> str:
    """PG_URL, or skip the test saying what to install."""
    reason = _reachable()
    if reason:
        pytest.skip(reason)
    return PG_URL


@pytest.fixture(scope="session")
def pg_url() -> str:
    return postgres_url()


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@dataclass(frozen=True)
class Database:
    schema: str
    url: str  # PG_URL whose search_path is the schema

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=3)

    def execute(self, sql: str) -> None:
        with self.connect() as connection:
            connection.execute(sql)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as connection:
            return connection.execute(sql, params).fetchall()


@contextmanager
def scratch_schema(url: str) -> Iterator[Database]:
    """A schema of its own in the database at `url`, dropped (CASCADE) when the block ends."""
    schema = f"cronlease_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield Database(schema, with_search_path(url, schema))
    finally:
        ensure_postgres_running()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def database(pg_url: str) -> Iterator[Database]:
    with scratch_schema(pg_url) as scratch:
        yield scratch


def spec(url: str, mode: str = "table", name: str = "billing", **options: Any) -> QueueSpec:
    full = {"url": url, "mode": mode, "table": "cronlease_runs", "ledger": "cronlease_delivered"}
    full.update(options)
    return QueueSpec(queue="billing", target="postgres", name=name, options=MappingProxyType(full))


def make_run(
    offset: int = 0,
    schedule: str = "tick",
    args: Mapping[str, Any] | list[Any] = MappingProxyType({"n": 1}),
    job: str = "record",
) -> OutboxRun:
    fire_ts = FIRST_TS + offset
    fire_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fire_ts))
    fields = {
        "run_id": f"{schedule}@{fire_time}",
        "schedule": schedule,
        "job": job,
        "args": json.dumps(args if isinstance(args, list) else dict(args)),
        "queue": "billing",
        "fire_time": fire_time,
        "fire_ts": str(fire_ts),
        "enqueued_at": fire_time[:-1] + ".004Z",
        "trigger": "scheduled",
        "token": "0000000000000007",
        "replica": "r1",
    }
    return OutboxRun(f"{fire_ts}-0", fields)


def runs(start: int, stop: int, schedule: str = "tick") -> list[OutboxRun]:
    return [make_run(i, schedule) for i in range(start, stop)]


def opened(queue: QueueSpec) -> PostgresDeliverer:
    migrate(queue)
    deliverer = PostgresDeliverer(queue)
    assert deliverer.open() == []
    return deliverer


def run_ids(database: Database, table: str = "cronlease_runs") -> list[str]:
    return [row[0] for row in database.query(f"SELECT run_id FROM {table} ORDER BY id")]


# --- the outages: a blocked port, a restart ------------------------------------------------


class PortBlocker:
    """A TCP forwarder 127.0.0.1:<port> -> PostgreSQL whose port can be blocked. While blocked
    it forwards nothing either way: what clients send is swallowed (the kernel still
    acknowledges it, as for a frozen server), new connections get no answer. Unblocking closes
    every connection that lived through the block; new ones are forwarded again."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5432) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.blocked = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, base: str) -> str:
        return base.replace("127.0.0.1:5432", f"127.0.0.1:{self.port}")

    def block(self) -> None:
        self.blocked.set()

    def unblock(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _shut(sock)
        self.blocked.clear()

    def close(self) -> None:
        _shut(self._listener)
        self.unblock()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._pairs.append((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.blocked.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        _shut(sink)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def blocker() -> Iterator[PortBlocker]:
    proxy = PortBlocker()
    try:
        yield proxy
    finally:
        proxy.close()


def postgres_cluster() -> tuple[str, str]:
    """(version, name) of the Debian cluster on port 5432, which pg_ctlcluster restarts."""
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None:
        pytest.skip("restarting PostgreSQL needs root and pg_ctlcluster (Debian's postgresql)")
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    for line in listed.stdout.splitlines():
        version, name, port, *_ = line.split()
        if port == "5432":
            return version, name
    pytest.skip("no Debian PostgreSQL cluster on port 5432 to restart")


def stop_postgres() -> None:
    version, name = postgres_cluster()
    subprocess.run(["pg_ctlcluster", version, name, "stop", "-m", "fast"], check=True)


def start_postgres() -> None:
    version, name = postgres_cluster()
    subprocess.run(["pg_ctlcluster", version, name, "start"], check=True)
    wait_until(lambda: _reachable() is None, 20, 0.1)


def ensure_postgres_running() -> None:
    """Leave the machine's PostgreSQL as it was found: running (a test that stopped it and
    failed before starting it again is repaired here)."""
    if _reachable() is not None and os.geteuid() == 0 and shutil.which("pg_ctlcluster"):
        start_postgres()


# --- schema ----------------------------------------------------------------------------------


def test_open_refuses_before_migrate_names_the_command_and_migrate_is_idempotent(
    database: Database,
) -> None:
    queue = spec(database.url)
    with pytest.raises(SchemaMissing) as missing:
        PostgresDeliverer(queue).open()
    assert "cronlease migrate --config" in str(missing.value)
    assert "cronlease_delivered" in str(missing.value) and "cronlease_runs" in str(missing.value)
    assert database.query("SELECT to_regclass('cronlease_runs')") == [(None,)]  # open made none
    assert all("IF NOT EXISTS" in statement for statement in migrate_sql(queue))
    assert migrate(queue) == [
        "queue 'billing': ledger cronlease_delivered ready",
        "queue 'billing': table cronlease_runs ready",
    ]
    migrate(queue)  # again: nothing changes, nothing fails
    PostgresDeliverer(queue).open()
    columns = dict(
        database.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'cronlease_runs'",
            (database.schema,),
        )
    )
    assert columns["args"] == "jsonb" and columns["fire_time"] == "timestamp with time zone"
    assert columns["enqueued_at"] == columns["delivered_at"] == "timestamp with time zone"
    assert {"run_id", "schedule", "job", "trigger", "queue", "token", "replica"} <= set(columns)
    # mode procrastinate: the ledger only, and open() names Procrastinate's own command.
    other = spec(database.url, mode="procrastinate", ledger="other_ledger")
    assert migrate(other)[0] == "queue 'billing': ledger other_ledger ready"
    assert "procrastinate --app=<your app> schema --apply" in migrate(other)[1]
    with pytest.raises(SchemaMissing, match="schema --apply"):
        PostgresDeliverer(other).open()


def test_a_table_of_another_shape_is_named_at_open(database: Database) -> None:
    database.execute("CREATE TABLE cronlease_delivered (run_id text PRIMARY KEY)")
    database.execute("CREATE TABLE cronlease_runs (run_id text)")
    with pytest.raises(SchemaMissing, match="cronlease's columns"):
        PostgresDeliverer(spec(database.url)).open()


# --- rows, ledger, order ----------------------------------------------------------------------


def test_rows_arrive_in_batch_order_with_the_runs_fields_typed(database: Database) -> None:
    deliverer = opened(spec(database.url))
    batch = [make_run(0, args={"to": "ü", "n": 2}), make_run(1, args=[1, "x"]), *runs(2, 50)]
    assert deliverer.deliver(batch).confirmed == 50
    assert run_ids(database) == [run.run_id for run in batch]
    [row] = database.query(
        "SELECT schedule, job, args, queue, fire_time, fire_ts, trigger, enqueued_at, token, "
        "replica, delivered_at >= now() - interval '1 minute' FROM cronlease_runs WHERE id = 1"
    )
    schedule, job, args, queue, fire_time, fire_ts, trigger, enqueued_at, token, *rest = row
    assert (schedule, job, args, queue, trigger, token) == (
        "tick", "record", {"to": "ü", "n": 2}, "billing", "scheduled", "0000000000000007",
    )  # fmt: skip
    assert fire_time.timestamp() == fire_ts == FIRST_TS
    assert enqueued_at.timestamp() == pytest.approx(FIRST_TS + 0.004)
    assert rest == ["r1", True]
    assert database.query("SELECT args FROM cronlease_runs WHERE id = 2") == [([1, "x"],)]
    deliverer.close()


def test_redelivery_is_a_counted_no_op_even_after_a_reader_consumed_the_rows(
    database: Database,
) -> None:
    deliverer = opened(spec(database.url))
    assert deliverer.deliver(runs(0, 10)).duplicates == 0
    # The relay died between COMMIT and XACK: the same batch again, then one that overlaps.
    again = deliverer.deliver(runs(0, 10))
    assert (again.confirmed, again.duplicates, again.error) == (10, 10, None)
    # A reader consumes (deletes) what it read: the ledger still remembers every run.
    consumed = database.query("DELETE FROM cronlease_runs RETURNING run_id")
    assert len(consumed) == 10
    overlap = deliverer.deliver(runs(5, 15))
    assert (overlap.confirmed, overlap.duplicates) == (10, 5)
    assert run_ids(database) == [run.run_id for run in runs(10, 15)]
    # One run twice in one batch: written once, counted once.
    twice = deliverer.deliver([make_run(20), make_run(21), make_run(20)])
    assert (twice.confirmed, twice.duplicates) == (3, 1)
    assert database.query("SELECT count(*) FROM cronlease_delivered") == [(17,)]
    deliverer.close()


def test_two_relays_delivering_the_same_batch_at_once_write_it_once(database: Database) -> None:
    """An old leader still delivering when the new one claims its runs: the second transaction
    waits on the ledger's unique index for the first's commit, then finds the conflict."""
    first, second = opened(spec(database.url)), opened(spec(database.url))
    batch = runs(0, 300)
    start = threading.Barrier(2)
    results = []

    def deliver(deliverer: PostgresDeliverer) -> None:
        start.wait()
        results.append(deliverer.deliver(batch))

    threads = [threading.Thread(target=deliver, args=(d,)) for d in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.confirmed for r in results) == [300, 300]
    assert sum(r.duplicates for r in results) == 300
    assert run_ids(database) == [run.run_id for run in batch]
    first.close(), second.close()


def test_a_run_postgres_refuses_confirms_the_runs_before_it(database: Database) -> None:
    deliverer = opened(spec(database.url))
    bad = make_run(3)
    bad = OutboxRun(bad.entry_id, {**bad.fields, "fire_ts": "not a number"})
    result = deliverer.deliver([*runs(0, 3), bad, make_run(4)])
    assert result.confirmed == 3 and result.error is not None
    assert bad.run_id in result.error and "bigint" in result.error
    assert run_ids(database) == [run.run_id for run in runs(0, 3)]
    # The connection is still good; the relay offers the rest again (here: without the bad run).
    assert deliverer.deliver([make_run(4)]).confirmed == 1
    deliverer.close()


def test_a_run_another_open_transaction_holds_is_unavailable_within_the_lock_timeout(
    database: Database,
) -> None:
    """A frozen old leader mid-transaction holds its ledger rows: the new one's insert waits
    on them only up to lock_timeout (and the server ends the frozen transaction later)."""
    deliverer = opened(spec(database.url))
    with database.connect() as frozen:
        frozen.execute("BEGIN")
        frozen.execute(
            "INSERT INTO cronlease_delivered (run_id) VALUES (%s)", (make_run(1).run_id,)
        )
        started = time.monotonic()
        with pytest.raises(TargetUnavailable, match="lock timeout"):
            deliverer.deliver(runs(0, 3))
        assert time.monotonic() - started < int(SESSION["lock_timeout"]) / 1000 + 1
        frozen.execute("ROLLBACK")
    assert deliverer.deliver(runs(0, 3)) == Delivered(3)
    assert run_ids(database) == [run.run_id for run in runs(0, 3)]
    deliverer.close()


def test_a_bad_table_name_is_refused_not_raised_into_the_relay(database: Database) -> None:
    with pytest.raises(SchemaMissing, match="not a table name"):
        PostgresDeliverer(spec(database.url, table="a.b.c")).open()
    with pytest.raises(MigrationFailed, match="not a table name"):
        migrate(spec(database.url, ledger="x..y"))


def test_an_unreachable_url_is_target_unavailable_and_the_password_is_not_said(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql://cron:s3cret-pass@127.0.0.1:{free_port()}/test"
    started = time.monotonic()
    with pytest.raises(TargetUnavailable) as error:
        PostgresDeliverer(spec(url)).open()
    assert time.monotonic() - started < CONNECT_TIMEOUT_S + 1
    assert "s3cret-pass" not in str(error.value)
    # ${VAR} in the url is read from the environment when the relay connects.
    monkeypatch.delenv("BILLING_PG_URL", raising=False)
    with pytest.raises(SecretMissing, match="BILLING_PG_URL"):
        PostgresDeliverer(spec("${BILLING_PG_URL}")).open()
    monkeypatch.setenv("BILLING_PG_URL", database.url)
    assert opened(spec("${BILLING_PG_URL}")).deliver(runs(0, 2)).confirmed == 2


def test_a_blocked_port_mid_stream_is_unavailable_within_the_deadline_then_recovers(
    database: Database, blocker: PortBlocker
) -> None:
    migrate(spec(database.url))
    deliverer = PostgresDeliverer(spec(blocker.url(database.url)))
    deliverer.open()
    assert deliverer.deliver(runs(0, 10)).confirmed == 10
    blocker.block()
    started = time.monotonic()
    with pytest.raises(TargetUnavailable):
        deliverer.deliver(runs(10, 20))  # sent into the void: the deadline ends the wait
    assert time.monotonic() - started < DEADLINE_S + 1.5
    started = time.monotonic()
    with pytest.raises(TargetUnavailable):
        deliverer.deliver(runs(10, 20))  # reconnecting: no answer, connect_timeout ends it
    assert time.monotonic() - started < CONNECT_TIMEOUT_S + 1.5
    blocker.unblock()
    # The relay offers the unacknowledged runs again, with more behind them.
    result = deliverer.deliver(runs(10, 30))
    assert (result.confirmed, result.duplicates) == (20, 0)
    assert run_ids(database) == [run.run_id for run in runs(0, 30)]
    deliverer.close()


def test_a_postgres_restart_mid_stream_is_unavailable_then_the_next_deliver_confirms(
    database: Database,
) -> None:
    postgres_cluster()  # skips without root / pg_ctlcluster
    deliverer = opened(spec(database.url))
    assert deliverer.deliver(runs(0, 10)).confirmed == 10
    try:
        stop_postgres()
        started = time.monotonic()
        with pytest.raises(TargetUnavailable):
            deliverer.deliver(runs(10, 20))  # the server closed the connection
        with pytest.raises(TargetUnavailable):
            deliverer.deliver(runs(10, 20))  # connection refused while it is down
        assert time.monotonic() - started < 2
    finally:
        start_postgres()
    result = deliverer.deliver(runs(5, 25))  # a claimed batch the old connection had part of
    assert (result.confirmed, result.duplicates) == (20, 5)
    assert run_ids(database) == [run.run_id for run in runs(0, 25)]
    deliverer.close()


# --- mode procrastinate: the real worker ------------------------------------------------------


class ProcrastinateWorker:
    def __init__(self, process: subprocess.Popen[bytes], record: Path, log: Path) -> None:
        self.process = process
        self.record = record
        self.log = log

    def lines(self) -> list[list[str]]:
        if not self.record.exists():
            return []
        return [line.split("\t") for line in self.record.read_text().splitlines()]

    def executed(self) -> list[str]:
        return [fields[0] for fields in self.lines()]

    def log_tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


def apply_procrastinate_schema(url: str) -> None:
    env = {**os.environ, "PROCRASTINATE_DSN": url, "PYTHONPATH": str(worker_dir("procrastinate"))}
    program = venv_bin("procrastinate", "procrastinate")
    command = [str(program), "--app=procjobs.app", "schema", "--apply"]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)


@contextmanager
def procrastinate_worker(url: str, queue: str, folder: Path) -> Iterator[ProcrastinateWorker]:
    """A real `procrastinate worker` on `queue` of the database at `url`, until the block ends."""
    program = venv_bin("procrastinate", "procrastinate")
    record, log = folder / "executed.tsv", folder / "worker.log"
    env = {
        **os.environ,
        "PROCRASTINATE_DSN": url,
        "CRONLEASE_RECORD": str(record),
        "PYTHONPATH": str(worker_dir("procrastinate")),
    }
    command = [
        str(program), "--verbose", "--app=procjobs.app", "worker", f"--queues={queue}",
        "--concurrency=1",
    ]  # fmt: skip
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=worker_dir("procrastinate"), env=env, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    worker = ProcrastinateWorker(process, record, log)
    try:

        def ready() -> bool:
            assert process.poll() is None, f"procrastinate worker exited:\n{worker.log_tail()}"
            return "Starting worker on queues" in worker.log_tail()

        wait_until(ready, START_TIMEOUT_S, 0.05)
        yield worker
    finally:
        stop_group(process)


def test_a_real_procrastinate_worker_runs_each_run_once_with_its_id_and_kwargs(
    database: Database, tmp_path: Path
) -> None:
    apply_procrastinate_schema(database.url)
    queue = spec(database.url, mode="procrastinate", name="cl-jobs")
    deliverer = opened(queue)
    batch = [make_run(0, args={"to": "ü", "n": 2}), make_run(1, args=[1, "x"]), *runs(2, 20)]
    with procrastinate_worker(database.url, "cl-jobs", tmp_path) as worker:
        assert deliverer.deliver(batch[:12]).confirmed == 12
        # The relay died before XACK, a new leader claimed the batch: delivered again, with more.
        again = deliverer.deliver(batch)
        assert (again.confirmed, again.duplicates) == (20, 12)

        def all_ran() -> bool:
            return len(worker.lines()) >= len(batch)

        try:
            wait_until(all_ran, 15, 0.05)
        except AssertionError:
            raise AssertionError(f"ran {worker.lines()}\n{worker.log_tail()}") from None
        # Settled: a re-delivery after the jobs ran runs nothing again.
        assert deliverer.deliver(batch[:5]).duplicates == 5

        def all_succeeded() -> bool:
            succeeded = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            return database.query(succeeded) == [(len(batch),)]

        wait_until(all_succeeded, 10, 0.05)
    lines = worker.lines()
    assert [fields[0] for fields in lines] == [run.run_id for run in batch]  # once, in order
    by_id = {fields[0]: fields for fields in lines}
    assert json.loads(by_id[batch[0].run_id][2]) == {"to": "ü", "n": 2}
    assert json.loads(by_id[batch[1].run_id][2]) == {"args": [1, "x"]}
    assert all(fields[3] == "cl-jobs" for fields in lines)
    jobs = database.query(
        "SELECT task_name, queue_name, count(*) FROM procrastinate_jobs GROUP BY 1, 2"
    )
    assert jobs == [("record", "cl-jobs", 20)]
    deliverer.close()
