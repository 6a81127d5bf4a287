"""PostgreSQL (psycopg 3): each outbox run lands exactly once, as a row or a Procrastinate job.

The guarantee: exactly once, permanently. One transaction per batch inserts the run ids into a
ledger table (`ledger`, default `cronlease_delivered`, `run_id text PRIMARY KEY`) with
`INSERT ... ON CONFLICT DO NOTHING RETURNING run_id`, then the job rows of the runs it RETURNED
(the new ones) only, then commits; the relay acknowledges after the commit. A batch delivered
again (the relay died between COMMIT and XACK, a new leader claimed the old one's pending runs,
`cronlease backfill` wrote a run id again) inserts nothing and is counted in `duplicates`. Two
relays delivering the same run at once serialize on the ledger's unique index: the second waits
for the first's COMMIT, then finds the conflict (PostgreSQL docs, INSERT "ON CONFLICT Clause").
This is TARGETS.md section 2's PostgreSQL recipe.

Modes (`mode`):
- `table` (default): rows in `table` (default `cronlease_runs`, columns in `migrate_sql`), in
  batch order (an identity column `id` says it), for any reader: `SELECT ... FOR UPDATE SKIP
  LOCKED`, or `DELETE ... RETURNING`: a consumed row can go, the ledger still remembers it.
- `procrastinate`: jobs through Procrastinate's own insert function
  `procrastinate_defer_jobs_v1(procrastinate_job_to_defer_v1[])` (procrastinate 3.x
  `procrastinate/sql/schema.sql`, the one its `defer_jobs` query calls), so its worker runs
  them: queue_name = the queue's `name`, task_name = the run's job, args (Procrastinate has
  keyword arguments only) = the schedule's args mapping as it is, a list as `{"args": [...]}`;
  the run id rides in the job's `queueing_lock` (`context.job.queueing_lock` in a task with
  `pass_context=True`; the fire time is after its `@`), which also keeps Procrastinate itself
  from holding one run waiting twice. Its periodic-defer dedup is not used: it remembers only a
  task's newest timestamp (TARGETS.md).

The schema is made on request (`migrate`, for `cronlease migrate --config F`), never at
start-up: `open()` checks it and says which command makes it. Every wait is bounded: connecting
(connect_timeout), each statement and lock wait (server-side timeouts), and the whole batch by a
client-side deadline that shuts the socket down, so a blocked port or a hung server surfaces as
TargetUnavailable within seconds, never a hung relay; the next deliver reconnects.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from scheduler.core.queues import QueueSpec
from scheduler.store.connection import redact
from scheduler.targets.relay.base import Delivered, OutboxRun, TargetUnavailable
from scheduler.targets.relay.secrets import resolve_url

if TYPE_CHECKING:
    import psycopg

DEFAULT_TABLE = "cronlease_runs"
DEFAULT_LEDGER = "cronlease_delivered"
CONNECT_TIMEOUT_S = 3
# Server side: one statement, one lock wait (a run another relay's open transaction holds),
# an open transaction its relay abandoned (frozen: the server ends it, freeing its runs).
SESSION = {
    "statement_timeout": "3000", "lock_timeout": "2000",
    "idle_in_transaction_session_timeout": "15000",
}  # fmt: skip
# Client side: one batch's whole transaction, past which the socket is shut down.
DEADLINE_S = 6.0
# The run table's columns (DESIGN), in the order the job rows are written.
COLUMNS = (
    "run_id", "schedule", "job", "args", "queue", "fire_time", "fire_ts", "trigger",
    "enqueued_at", "token", "replica",
)  # fmt: skip
_CASTS = dict(args="jsonb", fire_ts="bigint", fire_time="timestamptz", enqueued_at="timestamptz")
DEFER_FUNCTION = "procrastinate_defer_jobs_v1"
DEFER_TYPE = "procrastinate_job_to_defer_v1"


class SchemaMissing(TargetUnavailable):
    """The ledger or the job table is not there (`cronlease migrate` makes them), or, for
    mode procrastinate, Procrastinate's schema is not (`procrastinate schema --apply`)."""


class MigrationFailed(Exception):
    """`migrate` could not create the schema (a permission, a clash with an existing object)."""


def quote_name(name: str) -> str:
    """`table` or `schema.table` as a quoted SQL identifier."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ValueError(f"{name!r} is not a table name (`table` or `schema.table`)")
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def _names(spec: QueueSpec) -> tuple[str, str, str]:
    """(mode, ledger, table), the table only meaningful in mode table."""
    options = spec.options
    return (
        str(options.get("mode") or "table"),
        str(options.get("ledger") or DEFAULT_LEDGER),
        str(options.get("table") or DEFAULT_TABLE),
    )


def migrate_sql(spec: QueueSpec) -> list[str]:
    """The statements `cronlease migrate` runs for a postgres queue: idempotent (IF NOT EXISTS),
    the ledger always, the run table in mode table (Procrastinate's schema is its own)."""
    mode, ledger, table = _names(spec)
    statements = [
        f"CREATE TABLE IF NOT EXISTS {quote_name(ledger)} (\n"
        "    run_id text PRIMARY KEY,\n"
        "    delivered_at timestamptz NOT NULL DEFAULT now()\n)"
    ]
    if mode == "table":
        base = table.split(".")[-1]
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {quote_name(table)} (\n"
            "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
            "    run_id text NOT NULL UNIQUE,\n"
            "    schedule text NOT NULL, job text NOT NULL,\n"
            "    args jsonb NOT NULL,\n"
            "    queue text NOT NULL,\n"
            "    fire_time timestamptz NOT NULL, fire_ts bigint NOT NULL,\n"
            "    trigger text NOT NULL,\n"
            "    enqueued_at timestamptz NOT NULL,\n"
            "    delivered_at timestamptz NOT NULL DEFAULT now(),\n"
            "    token text NOT NULL, replica text NOT NULL\n)"
        )
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {quote_name(base[:45] + '_schedule_fire_time_idx')} "
            f"ON {quote_name(table)} (schedule, fire_time)"
        )
    return statements


def migrate(spec: QueueSpec, environ: Mapping[str, str] | None = None) -> list[str]:
    """Create the queue's schema (migrate_sql) in one transaction; returns lines to print.
    Raises TargetUnavailable (unreachable; SecretMissing from the URL) or MigrationFailed."""
    import psycopg

    mode, ledger, table = _names(spec)
    try:
        statements = migrate_sql(spec)
    except ValueError as error:
        raise MigrationFailed(f"queue {spec.queue!r}: {error}") from None
    url = resolve_url(spec, environ)
    with _connect(url) as connection:
        try:
            with connection.transaction():
                for statement in statements:
                    connection.execute(statement)
            lines = [f"queue {spec.queue!r}: ledger {ledger} ready"]
            if mode == "table":
                lines.append(f"queue {spec.queue!r}: table {table} ready")
            elif not _procrastinate_ready(connection):
                lines.append(_procrastinate_hint(spec))
        except psycopg.OperationalError as error:
            raise TargetUnavailable(_describe(error, url)) from None
        except psycopg.Error as error:
            raise MigrationFailed(f"queue {spec.queue!r}: {_describe(error, url)}") from None
    return lines


class PostgresDeliverer:
    """One postgres queue's deliverer: one connection, one transaction per batch."""

    def __init__(self, spec: QueueSpec, *, deadline_s: float = DEADLINE_S) -> None:
        self.spec = spec
        self._mode, self._ledger, self._table = _names(spec)
        self._deadline_s = deadline_s
        self._connection: psycopg.Connection[Any] | None = None
        self._url = ""

    def open(self) -> list[str]:
        """Connect and check the schema; raises SchemaMissing naming the command that makes
        it, TargetUnavailable when PostgreSQL cannot be reached."""
        try:
            quote_name(self._ledger), quote_name(self._table)
        except ValueError as error:
            raise SchemaMissing(f"queue {self.spec.queue!r}: {error}") from None
        connection = self._connect()
        import psycopg

        problems = []
        try:
            found = connection.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (quote_name(self._ledger),)
            ).fetchone()
            missing = [] if found and found[0] else [f"ledger table {self._ledger}"]
            if self._mode == "table":
                try:
                    columns = ", ".join(COLUMNS)
                    connection.execute(f"SELECT {columns} FROM {quote_name(self._table)} LIMIT 0")
                except psycopg.errors.UndefinedTable:
                    missing.append(f"table {self._table}")
                except psycopg.errors.UndefinedColumn as error:
                    missing.append(f"table {self._table} with cronlease's columns ({error})")
            elif not _procrastinate_ready(connection):
                problems.append(_procrastinate_hint(self.spec))
        except psycopg.Error as error:
            self.close()
            raise TargetUnavailable(_describe(error, self._url)) from None
        if missing:
            problems.insert(
                0,
                f"queue {self.spec.queue!r}: {' and '.join(missing)} not found in "
                f"{redact(self._url)}: run `cronlease migrate --config <schedules.yaml>` "
                "(the schema is made on request, never at start-up)",
            )
        if problems:
            self.close()
            raise SchemaMissing("; ".join(problems))
        return []

    def deliver(self, runs: Sequence[OutboxRun]) -> Delivered:
        """All of `runs` in one transaction: confirmed all, or none (TargetUnavailable). A run
        PostgreSQL refuses (bad data) is found by writing one run per transaction: the runs
        before it are confirmed, it is named in `error`."""
        if not runs:
            return Delivered(0)
        import psycopg

        connection = self._connection or self._connect()
        try:
            new = self._in_transaction(connection, runs)
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            self.close()
            raise TargetUnavailable(_describe(error, self._url)) from None
        except (psycopg.Error, ValueError):  # a run it refuses (ValueError: args not JSON)
            return self._one_by_one(connection, runs)
        return Delivered(len(runs), duplicates=len(runs) - new)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(Exception):  # a broken connection: nothing left to save
                connection.close()

    # --- inside -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        self._url = resolve_url(self.spec)
        self._connection = _connect(self._url)
        return self._connection

    def _one_by_one(
        self, connection: psycopg.Connection[Any], runs: Sequence[OutboxRun]
    ) -> Delivered:
        import psycopg

        duplicates = 0
        for index, run in enumerate(runs):
            try:
                duplicates += 1 - self._in_transaction(connection, [run])
            except (psycopg.Error, ValueError) as error:
                if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
                    self.close()
                reason = f"run {run.run_id!r}: {_describe(error, self._url)}"
                return Delivered(index, duplicates=duplicates, error=reason)
        return Delivered(len(runs), duplicates=duplicates)

    def _in_transaction(
        self, connection: psycopg.Connection[Any], runs: Sequence[OutboxRun]
    ) -> int:
        """Write `runs` in one transaction, committed on return; the number of new runs."""
        with _deadline(connection, self._deadline_s) as expired:
            try:
                with connection.transaction():
                    new = self._write(connection, runs)
            finally:
                if expired():
                    self.close()
        return new

    def _write(self, connection: psycopg.Connection[Any], runs: Sequence[OutboxRun]) -> int:
        first: dict[str, OutboxRun] = {}
        for run in runs:
            first.setdefault(run.run_id, run)  # a run twice in one batch: the second is a dup
        cursor = connection.execute(
            f"INSERT INTO {quote_name(self._ledger)} (run_id) "
            "SELECT r.run_id FROM unnest(%s::text[]) WITH ORDINALITY AS r(run_id, n) "
            "ORDER BY r.n ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
            (list(first),),
        )
        inserted = {row[0] for row in cursor.fetchall()}
        fresh = [run for run_id, run in first.items() if run_id in inserted]
        if not fresh:
            return 0
        if self._mode == "table":
            self._insert_rows(connection, fresh)
        else:
            self._defer_jobs(connection, fresh)
        return len(fresh)

    def _insert_rows(self, connection: psycopg.Connection[Any], runs: list[OutboxRun]) -> None:
        arrays = [[run.fields.get(column, "") for run in runs] for column in COLUMNS]
        arrays[COLUMNS.index("args")] = [run.fields.get("args") or "{}" for run in runs]
        unnest = ", ".join(["%s::text[]"] * len(COLUMNS))
        values = ", ".join(
            f"r.{column}::{_CASTS[column]}" if column in _CASTS else f"r.{column}"
            for column in COLUMNS
        )
        connection.execute(
            f"INSERT INTO {quote_name(self._table)} ({', '.join(COLUMNS)}) "
            f"SELECT {values} FROM unnest({unnest}) WITH ORDINALITY "
            f"AS r({', '.join(COLUMNS)}, n) ORDER BY r.n",
            arrays,
        )

    def _defer_jobs(self, connection: psycopg.Connection[Any], runs: list[OutboxRun]) -> None:
        connection.execute(
            f"SELECT {DEFER_FUNCTION}(ARRAY(SELECT ROW(%s::varchar, r.task, 0, NULL::text, "
            f"r.run_id, r.args::jsonb, NULL::timestamptz)::{DEFER_TYPE} "
            "FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY "
            "AS r(task, run_id, args, n) ORDER BY r.n))",
            (
                self.spec.name,
                [run.fields.get("job", "") for run in runs],
                [run.run_id for run in runs],
                [json.dumps(procrastinate_args(run), ensure_ascii=False) for run in runs],
            ),
        )


def procrastinate_args(run: OutboxRun) -> dict[str, Any]:
    """The job's keyword arguments: the args mapping as it is; a list as `{"args": [...]}`."""
    args = run.args
    return dict(args) if isinstance(args, Mapping) else {"args": args}


def _connect(url: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode (each batch opens its own transaction block) whose
    waits are all bounded; TargetUnavailable when it cannot be made."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError as error:
        raise TargetUnavailable(
            f"psycopg is not installed (pip install 'cronlease[postgres]'): {error}"
        ) from None
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as error:
        raise TargetUnavailable(f"not a PostgreSQL URL: {redact(url)} ({error})") from None
    extra: dict[str, Any] = {"application_name": "cronlease-relay"}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        connection = psycopg.connect(url, autocommit=True, **extra)
    except psycopg.Error as error:
        raise TargetUnavailable(_describe(error, url)) from None
    try:
        for name, value in SESSION.items():
            connection.execute("SELECT set_config(%s, %s, false)", (name, value))
    except psycopg.Error as error:
        connection.close()
        raise TargetUnavailable(_describe(error, url)) from None
    return connection


@contextmanager
def _deadline(connection: psycopg.Connection[Any], seconds: float) -> Iterator[Callable[[], bool]]:
    """Shut the connection's socket down if the block lasts longer than `seconds`: a wait on a
    blocked port or a frozen server then ends at once with an error (shutdown, not close, so
    the descriptor stays the connection's until it is closed). Yields "did it expire?"."""
    fired = threading.Event()
    fd = connection.pgconn.socket

    def expire() -> None:
        fired.set()
        with suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield fired.is_set
    finally:
        timer.cancel()


def _procrastinate_ready(connection: psycopg.Connection[Any]) -> bool:
    row = connection.execute(
        "SELECT to_regtype(%s) IS NOT NULL AND EXISTS "
        "(SELECT 1 FROM pg_proc WHERE proname = %s AND pg_function_is_visible(oid))",
        (DEFER_TYPE, DEFER_FUNCTION),
    ).fetchone()
    return bool(row and row[0])


def _procrastinate_hint(spec: QueueSpec) -> str:
    return (
        f"queue {spec.queue!r}: Procrastinate's schema ({DEFER_FUNCTION}, procrastinate 3.x) "
        "is not in this database (or not on the connection's search_path): apply it with "
        "`procrastinate --app=<your app> schema --apply`"
    )


def _describe(error: BaseException, url: str) -> str:
    """One line for the log: the error's class and first line, the URL's password hidden."""
    text = (str(error).strip().splitlines() or [""])[0]
    text = text.replace(url, redact(url)) if url else text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
