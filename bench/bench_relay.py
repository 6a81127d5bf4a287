"""The outbox relay per relayed target: steady-state throughput, and lag at an offered rate.

    python bench/bench_relay.py [--runs 20000] [--rate 1000] [--lag-seconds 5] [--json]
    python bench/bench_relay.py --only postgres,nats --pace spread --lag-seconds 10

About 100 s with the defaults, against the real servers of this machine: PostgreSQL
(`--pg-url`, default postgresql://postgres@127.0.0.1:5432/test), RabbitMQ (`--amqp-url`,
default amqp://guest:guest@127.0.0.1:5672//), NATS with JetStream (`--nats-url`, default
nats://127.0.0.1:4222); a target whose server (or client library) is missing is shown as
"skipped" with the reason, and the others run.

Starts its own redis-server for the scheduler (no persistence unless --aof), and for the
`rq-remote` target a second one (the "another Redis instance" an in-Redis target is relayed
to). Per target, everything it uses is its own and removed afterwards, whatever happens:
- postgres: a schema `cronlease_bench_<hex>` in the database (the queue's URL sets its
  search_path), with the ledger and the `cronlease_runs` table made by migrate() (what
  `cronlease migrate` runs); dropped with CASCADE;
- procrastinate: the same, plus Procrastinate 3.10's own schema applied into it with
  `procrastinate schema --apply` from the test workers' virtualenv
  (tests/targets/install_workers.py procrastinate makes it; without it: skipped);
- rabbitmq and celery (Celery on RabbitMQ, protocol v2 messages): a durable queue
  `cronlease-bench-<hex>`, declared here (no consumer), deleted after;
- nats: a JetStream stream `CRONLEASE_BENCH_<hex>` (file storage, duplicate window = the
  catch-up window, so the relay has nothing to warn about) on subject `cronlease.bench.<hex>`,
  deleted after;
- rq-remote: RQ (pickle) on the second redis-server, `url: redis://127.0.0.1:<port>/0`.
URLs with a password are written `${CRONLEASE_BENCH_*}` in the config (validation refuses a
literal one) and the variable set in this process's environment, as a deployment would.

Each target's config is `--rate` `every: 1s` schedules on one queue `bench` of that target,
validated by parse_config; runs are written by the real enqueue path (RoutedTarget.prepare and
.send: ENQUEUE_STREAM into `{cronlease}:outbox:bench`, fenced by a lease from
Scripts.acquire), and delivered by the real Relay (daemon/relay.py, lease_valid always true,
the deliverer from the registry, wrapped only to note when each deliver() returned):
1. throughput: `--runs` runs (fires of every schedule, second after second, in the past) are
   written to the outbox first; then the relay starts (Relay.lead). runs/s = runs / (the
   moment the last run's deliver() returned - the start): connecting and the target's checks
   (open()) included, shown apart as `open ms` (start -> the first batch confirmed; --json
   also has the rate from the first batch confirmed to the last, `after_open_runs_per_s`).
2. lag, with the relay running and the outbox empty: runs are offered at `--rate` runs/s for
   `--lag-seconds`, per `--pace`:
   - `spread`: every `--tick-ms` ms a slice of the schedules (rate x tick runs), each schedule
     once a second: the relay's own latency at a steady trickle;
   - `instant`: all `--rate` schedules at once at each whole second, as the leader writes an
     instant of every-second schedules: the latency of a burst, its last run waiting for the
     ones before it.
   lag = the moment the run's deliver() returned (the target confirmed it) - its
   `enqueued_at` (Redis's TIME in the enqueue script, in milliseconds, truncated: each lag
   reads up to 1 ms long; Redis and this process share the machine's clock). p50 / p99 over
   every run of the phase: the table's `lag` (spread) and `burst` (instant) columns. The
   relay's own cronlease_relay_lag_seconds over the phase (observed after the XACK, so a
   little later) is in --json beside them as a check: its count, mean, and the upper bound of
   the bucket holding its p99.
Then the relay stops, and the target must hold as many runs as were offered, counted there
(distinct run ids of the table's rows, Procrastinate's jobs, the messages in the queue or the
stream, the RQ queue's entries), and the outbox must hold nothing unacknowledged: otherwise the
target "failed" and its figures are not shown. The relay's warnings, and its retried, failed,
duplicates and redelivered counters when not 0, are in the notes (a server restarted by someone
else meanwhile shows there: "figures disturbed").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchkit import RedisProcess, add_aof_flag, exit_on_sigterm, parse_rfc3339, table
from prometheus_client import CollectorRegistry

from scheduler.core.config import parse_config
from scheduler.core.queues import QueueSpec
from scheduler.core.runs import DueFire, Lease, Outcome, Trigger
from scheduler.core.schedule import DEFAULT_CATCHUP_WINDOW_S, Config, Schedule
from scheduler.daemon.relay import BLOCK_MS, Relay
from scheduler.ops.metrics import Metrics
from scheduler.store.connection import connect, redact
from scheduler.store.keys import Keys
from scheduler.store.outbox import RELAY_GROUP, Outbox
from scheduler.store.scripts import Scripts
from scheduler.targets.relay.base import Delivered, Deliverer, OutboxRun
from scheduler.targets.relay.registry import deliverer_for
from scheduler.targets.router import PreparedRoutes, RoutedTarget

REPO = Path(__file__).resolve().parent.parent
REPLICA_ID = "bench"
LEASE_TTL_MS = 3_600_000  # nobody competes for it here
QUEUE = "bench"
# As Relay.for_daemon sets them for a 10 s lease (socket timeout 2 s).
RELAY_SOCKET_TIMEOUT_S = BLOCK_MS / 1000 + 2.0
CLAIM_IDLE_MS = 10_500
PROCRASTINATE_WORKER = REPO / "tests" / "targets" / "workers" / "procrastinate"
PROCRASTINATE_VENV = Path(os.environ.get("CRONLEASE_WORKER_VENVS", REPO / ".worker-venvs"))
PACES = ("spread", "instant")


@dataclass(frozen=True)
class Variant:
    id: str  # what --only takes
    label: str


VARIANTS = (
    Variant("postgres", "postgres table"),
    Variant("procrastinate", "postgres procrastinate"),
    Variant("rabbitmq", "rabbitmq"),
    Variant("celery", "celery on rabbitmq"),
    Variant("nats", "nats jetstream"),
    Variant("rq-remote", "rq on another redis"),
)


class Unavailable(Exception):
    """The target's server or client is not there: the target is skipped, with this reason."""


# What a target's clean-up could not remove (its server stayed down): shown in its notes.
LEFT_BEHIND: list[str] = []
CLEANUP_S = 30.0


def clean_up(action: Callable[[], object], what: str) -> None:
    """Run `action` until it succeeds (a server restarting meanwhile is waited for), at most
    CLEANUP_S; what it could not remove is noted in LEFT_BEHIND, never raised (a clean-up
    runs in a `finally`, maybe unwinding a Ctrl-C or SIGTERM, which must go on)."""
    deadline = time.monotonic() + CLEANUP_S
    while True:
        try:
            action()
            return
        except Exception as error:
            if time.monotonic() >= deadline:
                LEFT_BEHIND.append(f"{what} NOT removed: {type(error).__name__}: {error}")
                print(f"bench_relay: {LEFT_BEHIND[-1]}", file=sys.stderr, flush=True)
                return
            time.sleep(1.0)


@dataclass
class Setup:
    """A target made ready for one bench: its `queues:` entry and how to count what it holds."""

    queue_yaml: str
    held: Callable[[], int]  # runs the target holds now (rows, jobs, messages, list entries)
    prepare: Callable[[QueueSpec], None] = lambda spec: None  # once the config is parsed
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Lag:
    pace: str
    offered: int  # runs written in the phase
    offered_per_s: float  # as sent (the sender may fall behind --rate)
    max_send_late_ms: float  # the latest a send started after its due moment
    p50_ms: float
    p99_ms: float
    max_ms: float
    # The relay's own cronlease_relay_lag_seconds over the phase (observed after the XACK):
    histogram_count: int
    histogram_mean_ms: float
    histogram_p99_le_ms: float  # the upper bound of the bucket holding its p99


@dataclass
class TargetResult:
    variant: Variant
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
    queue: str = ""  # how validate names where the runs go
    runs: int = 0
    seconds: float = 0.0
    runs_per_s: float = 0.0
    open_ms: float = 0.0
    after_open_runs_per_s: float = 0.0  # first batch confirmed -> last
    batches: int = 0
    lags: list[Lag] = field(default_factory=list)
    held: int = 0
    relay: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- the relay's deliverer, timed --------------------------------------------------------------


class Sink:
    """What the timed deliverers saw: when each deliver() returned and which runs it confirmed
    (their enqueued_at texts, parsed afterwards: parsing here would slow the relay down)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.confirmed = 0
        self.batches = 0
        self.first_at = 0.0  # perf_counter of the first confirmed batch
        self.last_at = 0.0  # perf_counter of the last confirmed batch
        self.phase = "throughput"
        self.stamps: dict[str, list[tuple[float, list[str]]]] = {}
        self.closed = threading.Event()

    def record(self, runs: Sequence[OutboxRun], result: Delivered) -> None:
        wall, mono = time.time(), time.perf_counter()
        confirmed = runs[: result.confirmed]
        if not confirmed:
            return
        texts = [run.fields.get("enqueued_at", "") for run in confirmed]
        with self.lock:
            if not self.confirmed:
                self.first_at = mono
            self.confirmed += len(confirmed)
            self.batches += 1
            self.last_at = mono
            self.stamps.setdefault(self.phase, []).append((wall, texts))


class TimedDeliverer:
    """The registry's deliverer for the queue, unchanged, noting each deliver()'s return."""

    def __init__(self, inner: Deliverer, sink: Sink) -> None:
        self.spec = inner.spec
        self._inner = inner
        self._sink = sink

    def open(self) -> list[str]:
        return self._inner.open()

    def deliver(self, runs: Sequence[OutboxRun]) -> Delivered:
        result = self._inner.deliver(runs)
        self._sink.record(runs, result)
        return result

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._sink.closed.set()


class Captured(logging.Handler):
    """The relay's warnings (a target refusing, a connection lost, open()'s warnings)."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self._progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.levelname.lower()}: {record.getMessage()}"
        self.lines.append(line)
        self._progress(f"  relay {line}")


# --- the targets ---------------------------------------------------------------------------------


def secret_url(url: str, variable: str) -> str:
    """`url` with its password (if any) replaced by `${variable}`, the variable set here: a
    schedules.yaml never holds a literal password."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return url
    os.environ[variable] = password  # as written in the URL (still %-encoded)
    netloc = f"{user}:${{{variable}}}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def flow(**entries: str) -> str:
    """A YAML flow mapping, each value a JSON string (valid YAML double-quoted text)."""
    return "{" + ", ".join(f"{key}: {json.dumps(value)}" for key, value in entries.items()) + "}"


def tag() -> str:
    return uuid.uuid4().hex[:10]


@contextlib.contextmanager
def postgres_target(args: argparse.Namespace, procrastinate: bool) -> Iterator[Setup]:
    try:
        import psycopg
    except ImportError as error:
        raise Unavailable(
            f"psycopg is not installed (pip install 'cronlease[postgres]'): {error}"
        ) from None
    from scheduler.targets.relay.postgres import migrate

    program = PROCRASTINATE_VENV / "procrastinate" / "bin" / "procrastinate"
    if procrastinate and not program.exists():
        raise Unavailable(
            f"no Procrastinate to apply its schema ({program} is missing): "
            "`python tests/targets/install_workers.py procrastinate` installs it"
        )
    try:
        admin = psycopg.connect(args.pg_url, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise Unavailable(f"PostgreSQL not reachable at {redact(args.pg_url)}: {first}") from None
    schema = f"cronlease_bench_{tag()}"
    try:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        joiner = "&" if "?" in args.pg_url else "?"
        scoped = f"{args.pg_url}{joiner}options=-csearch_path%3D{schema}"
        notes = [f"schema {schema}, dropped after"]
        if procrastinate:
            started = time.perf_counter()
            env = {
                **os.environ,
                "PROCRASTINATE_DSN": scoped,
                "PYTHONPATH": str(PROCRASTINATE_WORKER),
            }
            done = subprocess.run(
                [str(program), "--app=procjobs.app", "schema", "--apply"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                raise Unavailable(f"procrastinate schema --apply failed: {' '.join(tail)}")
            notes.append(
                f"Procrastinate's schema applied in {time.perf_counter() - started:.1f} s; "
                "no worker runs the jobs (they wait, status todo)"
            )
            entry = flow(
                target="postgres",
                url=secret_url(scoped, "CRONLEASE_BENCH_PG_PASSWORD"),
                mode="procrastinate",
                name=QUEUE,
            )
            count_sql = f'SELECT count(DISTINCT queueing_lock) FROM "{schema}".procrastinate_jobs'
        else:
            entry = flow(
                target="postgres",
                url=secret_url(scoped, "CRONLEASE_BENCH_PG_PASSWORD"),
                table="cronlease_runs",
            )
            count_sql = f'SELECT count(DISTINCT run_id) FROM "{schema}".cronlease_runs'

        def held() -> int:
            row = admin.execute(count_sql).fetchone()
            return int(row[0]) if row else 0

        def prepare(spec: QueueSpec) -> None:
            migrate(spec)  # the ledger (and the table): what `cronlease migrate` makes

        yield Setup(entry, held, prepare, notes)
    finally:
        with contextlib.suppress(Exception):
            admin.close()

        def drop() -> None:
            with psycopg.connect(args.pg_url, autocommit=True, connect_timeout=3) as fresh:
                fresh.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

        clean_up(drop, f"PostgreSQL schema {schema}")


@contextlib.contextmanager
def rabbit_channel(url: str) -> Iterator[Any]:
    import pika  # type: ignore[import-untyped]

    from scheduler.targets.relay.rabbitmq import virtual_host

    parameters = pika.URLParameters(url.replace("pyamqp://", "amqp://", 1))
    parameters.virtual_host = virtual_host(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = 5
    try:
        connection = pika.BlockingConnection(parameters)
    except Exception as error:  # AMQPConnectionError and its kin, OSError
        raise Unavailable(f"RabbitMQ not reachable at {redact(url)}: {error!r}") from None
    try:
        yield connection.channel()
    finally:
        with contextlib.suppress(Exception):
            connection.close()


@contextlib.contextmanager
def rabbit_target(args: argparse.Namespace, celery: bool) -> Iterator[Setup]:
    try:
        import pika  # noqa: F401
    except ImportError as error:
        raise Unavailable(
            f"pika is not installed (pip install 'cronlease[rabbitmq]'): {error}"
        ) from None
    name = f"cronlease-bench-{tag()}"
    with rabbit_channel(args.amqp_url) as channel:
        channel.queue_declare(name, durable=True)
    try:
        url = secret_url(args.amqp_url, "CRONLEASE_BENCH_AMQP_PASSWORD")
        entry = flow(target="celery" if celery else "rabbitmq", url=url, name=name)

        def held() -> int:
            with rabbit_channel(args.amqp_url) as channel:
                return int(channel.queue_declare(name, passive=True).method.message_count)

        yield Setup(entry, held, notes=[f"durable queue {name} (no consumer), deleted after"])
    finally:

        def delete() -> None:
            with rabbit_channel(args.amqp_url) as channel:
                channel.queue_delete(name)

        clean_up(delete, f"RabbitMQ queue {name}")


async def _jetstream(url: str, method: str, *call: Any) -> Any:
    import nats

    async def quiet(error: Exception) -> None:
        del error  # a refused connection is raised below; nats-py would print a traceback

    # As the deliverer connects: one walk of the server pool, no waits between attempts.
    nc = await asyncio.wait_for(
        nats.connect(
            url,
            connect_timeout=2,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            error_cb=quiet,
        ),
        5.0,
    )
    try:
        return await getattr(nc.jetstream(timeout=5), method)(*call)
    finally:
        await nc.close()


def jetstream(url: str, method: str, *call: Any) -> Any:
    try:
        return asyncio.run(_jetstream(url, method, *call))
    except Exception as error:
        if isinstance(error, Unavailable):
            raise
        raise Unavailable(
            f"NATS JetStream at {redact(url)}: {type(error).__name__}: {error}"
        ) from None


@contextlib.contextmanager
def nats_target(args: argparse.Namespace) -> Iterator[Setup]:
    try:
        from nats.js.api import StorageType, StreamConfig
    except ImportError as error:
        raise Unavailable(
            f"nats-py is not installed (pip install 'cronlease[nats]'): {error}"
        ) from None
    suffix = tag()
    stream, subject = f"CRONLEASE_BENCH_{suffix}", f"cronlease.bench.{suffix}"
    config = StreamConfig(
        name=stream,
        subjects=[subject],
        storage=StorageType.FILE,
        duplicate_window=float(DEFAULT_CATCHUP_WINDOW_S),
    )
    jetstream(args.nats_url, "add_stream", config)
    try:
        url = secret_url(args.nats_url, "CRONLEASE_BENCH_NATS_PASSWORD")
        entry = flow(target="nats", url=url, name=subject)

        def held() -> int:
            return int(jetstream(args.nats_url, "stream_info", stream).state.messages)

        yield Setup(
            entry,
            held,
            notes=[
                f"stream {stream} (file storage, duplicate window "
                f"{DEFAULT_CATCHUP_WINDOW_S} s), deleted after"
            ],
        )
    finally:
        clean_up(
            lambda: jetstream(args.nats_url, "delete_stream", stream), f"JetStream stream {stream}"
        )


@contextlib.contextmanager
def remote_redis_target(args: argparse.Namespace) -> Iterator[Setup]:
    with RedisProcess() as other:
        client = other.client()
        try:
            entry = flow(target="rq", url=f"redis://127.0.0.1:{other.port}/0", name=QUEUE)

            def held() -> int:
                return int(client.llen(f"rq:queue:{QUEUE}"))

            notes = [f"a second redis-server {other.version()} (no persistence), stopped after"]
            yield Setup(entry, held, notes=notes)
        finally:
            client.close()


def target_setup(
    variant: Variant, args: argparse.Namespace
) -> contextlib.AbstractContextManager[Setup]:
    if variant.id == "postgres":
        return postgres_target(args, procrastinate=False)
    if variant.id == "procrastinate":
        return postgres_target(args, procrastinate=True)
    if variant.id == "rabbitmq":
        return rabbit_target(args, celery=False)
    if variant.id == "celery":
        return rabbit_target(args, celery=True)
    if variant.id == "nats":
        return nats_target(args)
    return remote_redis_target(args)


# --- the enqueue side ----------------------------------------------------------------------------


def config_yaml(queue_yaml: str, schedules: int) -> str:
    lines = ["queues:", f"  {QUEUE}: {queue_yaml}", "schedules:"]
    for i in range(schedules):
        lines += [
            f"  bench-{i:05d}:",
            "    every: 1s",
            "    job: bench.job",
            f"    args: {{n: {i}, kind: bench}}",
            f"    queue: {QUEUE}",
        ]
    return "\n".join(lines) + "\n"


def take_lease(scripts: Scripts) -> tuple[Lease, float]:
    reply = scripts.acquire(REPLICA_ID, LEASE_TTL_MS, secrets.token_hex(8))
    if reply.token == 0:
        raise RuntimeError("could not take the lease on a flushed Redis")
    return Lease(f"{reply.token}:{REPLICA_ID}", reply.token, REPLICA_ID), reply.redis_time_s


def send(router: RoutedTarget, prepared: PreparedRoutes) -> int:
    written = router.send(prepared)
    wrong = [o for o in written.outcomes if o is not Outcome.ENQUEUED]
    if wrong:
        count = len(written.outcomes)
        raise RuntimeError(f"{len(wrong)} of {count} fires not enqueued (first: {wrong[0]})")
    return len(written.outcomes)


def prefill(
    router: RoutedTarget, lease: Lease, schedules: Sequence[Schedule], runs: int, first_ts: int
) -> int:
    """`runs` runs into the outbox: every schedule at first_ts, then at first_ts + 1, ...;
    returns the last fire time used."""
    written = 0
    fire_ts = first_ts
    while written < runs:
        chunk = schedules[: min(len(schedules), runs - written)]
        fires = [DueFire(s, fire_ts, Trigger.SCHEDULED) for s in chunk]
        written += send(router, router.prepare(lease, fires, float(fire_ts)))
        fire_ts += 1
    return fire_ts - 1


def offer(
    router: RoutedTarget,
    lease: Lease,
    schedules: Sequence[Schedule],
    pace: str,
    seconds: int,
    tick_ms: int,
    after_ts: int,
) -> tuple[int, float, float, int]:
    """Runs at len(schedules) runs/s for `seconds`, each schedule once a second: in slices every
    tick (spread) or all at each second (instant), fire times after `after_ts` (the cursors).
    Every send is prepared before the phase, as the leader prepares an instant ahead. Returns
    (runs, runs/s as sent, the latest a send started in ms, the last fire time used)."""
    ticks = 1 if pace == "instant" else max(1, 1000 // tick_ms)
    step_s = 1.0 / ticks
    count = len(schedules)
    start = max(time.time() + 0.2, float(after_ts + 1))
    plan: list[tuple[float, PreparedRoutes]] = []
    fire_ts = after_ts
    for second in range(seconds):
        fire_ts = int(start + second)  # the round's first send is at or after this second
        for tick in range(ticks):
            chunk = schedules[tick * count // ticks : (tick + 1) * count // ticks]
            if not chunk:
                continue
            fires = [DueFire(s, fire_ts, Trigger.SCHEDULED) for s in chunk]
            due = start + second + tick * step_s
            plan.append((due, router.prepare(lease, fires, float(fire_ts))))
    # Preparing took longer than the lead: every send later by as much (still never before
    # its fire second, which the enqueue script would refuse).
    shift = max(0.0, time.time() + 0.05 - start)
    start += shift
    plan = [(due + shift, prepared) for due, prepared in plan]
    late = 0.0
    written = 0
    for due, prepared in plan:
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        late = max(late, time.time() - due)
        written += send(router, prepared)
    ended = time.time()
    span = max(ended - start, plan[-1][0] - start + step_s)
    return written, written / span, late * 1000, fire_ts


# --- one target ----------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def lags_ms(stamps: Sequence[tuple[float, list[str]]]) -> list[float]:
    cache: dict[str, float] = {}
    lags = []
    for at, texts in stamps:
        for text in texts:
            enqueued = cache.get(text)
            if enqueued is None:
                enqueued = cache[text] = parse_rfc3339(text)
            lags.append((at - enqueued) * 1000)
    lags.sort()
    return lags


def wait_confirmed(sink: Sink, total: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while sink.confirmed < total:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what}: {sink.confirmed:,} of {total:,} runs confirmed after {timeout_s:g} s"
            )
        time.sleep(0.002)


def relay_figures(registry: CollectorRegistry) -> dict[str, float]:
    labels = {"queue": QUEUE}
    figures: dict[str, float] = {}
    for name in ("delivered", "duplicates", "redelivered", "retried", "failed"):
        figures[name] = registry.get_sample_value(f"cronlease_relay_{name}_total", labels) or 0.0
    return figures


@dataclass(frozen=True)
class Histogram:
    """cronlease_relay_lag_seconds of the queue at one moment: count, sum, cumulative buckets."""

    count: float
    total_s: float
    buckets: tuple[tuple[float, float], ...]  # (le, cumulative count), ascending

    @classmethod
    def read(cls, registry: CollectorRegistry) -> Histogram:
        count = total = 0.0
        buckets = []
        for metric in registry.collect():
            if metric.name != "cronlease_relay_lag_seconds":
                continue
            for sample in metric.samples:
                if sample.labels.get("queue") != QUEUE:
                    continue
                if sample.name.endswith("_count"):
                    count = sample.value
                elif sample.name.endswith("_sum"):
                    total = sample.value
                elif sample.name.endswith("_bucket"):
                    buckets.append((float(sample.labels["le"]), sample.value))
        return cls(count, total, tuple(sorted(buckets)))

    def since(self, before: Histogram) -> tuple[int, float, float]:
        """(runs observed, mean ms, the upper bound in ms of the bucket holding their p99)."""
        count = self.count - before.count
        if count <= 0:
            return 0, float("nan"), float("nan")
        earlier = dict(before.buckets)
        p99_le = float("inf")
        for le, cumulative in self.buckets:
            if cumulative - earlier.get(le, 0.0) >= 0.99 * count:
                p99_le = le
                break
        return int(count), (self.total_s - before.total_s) / count * 1000, p99_le * 1000


def wait_observed(registry: CollectorRegistry, before: Histogram, runs: int) -> Histogram:
    """The histogram once the relay observed `runs` more (it does so after the XACK, a moment
    after the deliverer returned); as it stands after 5 s otherwise."""
    deadline = time.monotonic() + 5.0
    while True:
        now = Histogram.read(registry)
        if now.count - before.count >= runs or time.monotonic() > deadline:
            return now
        time.sleep(0.005)


def stop_relay(relay: Relay, sink: Sink) -> None:
    threads = [t for t in threading.enumerate() if t.name == f"relay-{QUEUE}"]
    relay.stand_down()
    for thread in threads:
        thread.join(15.0)
    sink.closed.wait(5.0)


class Bench:
    def __init__(self, server: RedisProcess, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.keys = Keys("cronlease")
        self.admin = server.client()
        self.client = connect(server.url, 30.0, f"cronlease-{REPLICA_ID}")
        self.scripts = Scripts(self.client, self.keys)

    def close(self) -> None:
        self.client.close()
        self.admin.close()

    def run_target(self, variant: Variant, progress: Callable[[str], None]) -> TargetResult:
        result = TargetResult(variant)
        try:
            with target_setup(variant, self.args) as setup:
                result.notes += setup.notes
                try:
                    self._measure(result, setup, progress)
                except Exception as error:
                    result.status, result.reason = "failed", f"{type(error).__name__}: {error}"
        except Unavailable as error:
            result.status, result.reason = "skipped", str(error)
        except Exception as error:  # setting the target up failed
            result.status, result.reason = "failed", f"{type(error).__name__}: {error}"
        result.notes += LEFT_BEHIND
        LEFT_BEHIND.clear()
        return result

    def _measure(self, result: TargetResult, setup: Setup, progress: Callable[[str], None]) -> None:
        args = self.args
        label = result.variant.label
        config: Config = parse_config(config_yaml(setup.queue_yaml, args.rate), "bench.yaml")
        spec = config.queues[QUEUE]
        if not spec.relayed:
            raise RuntimeError(f"queue {QUEUE!r} ({spec.describe()}) is not relayed")
        result.queue = spec.describe()
        setup.prepare(spec)
        self.admin.flushall()
        lease, now_s = take_lease(self.scripts)
        router = RoutedTarget(self.scripts, self.keys, config.queues)
        started = time.perf_counter()
        last_ts = prefill(router, lease, config.schedules, args.runs, int(now_s) - 86_400)
        outbox_key = self.keys.outbox(QUEUE)
        if int(self.admin.xlen(outbox_key)) != args.runs:
            raise RuntimeError(
                f"the outbox holds {self.admin.xlen(outbox_key)} runs, not {args.runs}"
            )
        progress(
            f"{label}: {args.runs:,} runs in the outbox in {time.perf_counter() - started:.1f} s"
        )

        sink = Sink()
        registry = CollectorRegistry()
        relay = Relay(
            lambda name: connect(self.server.url, RELAY_SOCKET_TIMEOUT_S, name),
            self.keys,
            REPLICA_ID,
            Metrics(registry),
            lambda: True,
            CLAIM_IDLE_MS,
            make_deliverer=lambda s, window: TimedDeliverer(deliverer_for(s, window), sink),
        )
        relay.configure(config)
        logger = logging.getLogger("scheduler")
        captured = Captured(progress)
        logger.addHandler(captured)
        try:
            started = time.perf_counter()
            relay.lead()
            wait_confirmed(sink, args.runs, args.timeout, "throughput")
            seconds = sink.last_at - started
            result.runs, result.seconds = args.runs, seconds
            result.runs_per_s = args.runs / seconds
            result.open_ms = (sink.first_at - started) * 1000
            first_batch = len(sink.stamps["throughput"][0][1])
            after_open = sink.last_at - sink.first_at
            if after_open > 0:
                result.after_open_runs_per_s = (args.runs - first_batch) / after_open
            result.batches = sink.batches
            progress(
                f"{label}: {args.runs:,} runs relayed in {seconds:.2f} s "
                f"({result.runs_per_s:,.0f} runs/s, open {result.open_ms:.0f} ms)"
            )
            total = args.runs
            before = wait_observed(registry, Histogram(0.0, 0.0, ()), args.runs)
            for pace in args.pace:
                sink.phase = pace
                offered, rate, late_ms, last_ts = offer(
                    router, lease, config.schedules, pace, args.lag_seconds, args.tick_ms, last_ts
                )
                total += offered
                wait_confirmed(sink, total, args.timeout, f"lag ({pace})")
                after = wait_observed(registry, before, offered)
                observed, mean_ms, p99_le_ms = after.since(before)
                before = after
                lags = lags_ms(sink.stamps.get(pace, []))
                lag = Lag(
                    pace=pace,
                    offered=offered,
                    offered_per_s=rate,
                    max_send_late_ms=late_ms,
                    p50_ms=percentile(lags, 50),
                    p99_ms=percentile(lags, 99),
                    max_ms=lags[-1] if lags else float("nan"),
                    histogram_count=observed,
                    histogram_mean_ms=mean_ms,
                    histogram_p99_le_ms=p99_le_ms,
                )
                result.lags.append(lag)
                progress(
                    f"{label}: {pace} {offered:,} runs at {rate:,.0f} runs/s: lag p50 "
                    f"{lag.p50_ms:.1f} ms, p99 {lag.p99_ms:.1f} ms, max {lag.max_ms:.1f} ms"
                )
        finally:
            stop_relay(relay, sink)
            logger.removeHandler(captured)
            result.relay = relay_figures(registry)
            result.notes += captured.lines
        self._check(result, setup, total, sink)

    def _check(self, result: TargetResult, setup: Setup, total: int, sink: Sink) -> None:
        """Every run in the target exactly once, the outbox drained, the counters clean."""
        result.held = setup.held()
        if result.held != total:
            raise RuntimeError(f"the target holds {result.held:,} runs, {total:,} were offered")
        if sink.confirmed != total:
            result.notes.append(f"deliverers confirmed {sink.confirmed:,} runs of {total:,}")
        outbox = Outbox(self.admin, self.keys.outbox(QUEUE), REPLICA_ID)
        seconds, micros = self.admin.time()
        figures = outbox.figures(int(seconds) + int(micros) / 1e6)
        if figures.waiting:
            raise RuntimeError(f"{figures.waiting} runs still wait in the outbox")
        pending = self.admin.xpending(self.keys.outbox(QUEUE), RELAY_GROUP)
        if pending and int(pending.get("pending") or 0):
            raise RuntimeError(f"{pending['pending']} runs left pending in the outbox's group")
        relay = result.relay
        if relay["delivered"] != total:
            result.notes.append(f"cronlease_relay_delivered_total {relay['delivered']:.0f}")
        for name in ("duplicates", "redelivered", "retried", "failed"):
            if relay[name]:
                result.notes.append(f"cronlease_relay_{name}_total {relay[name]:.0f}")


# --- the run and its report ----------------------------------------------------------------------


def run(args: argparse.Namespace, progress: Callable[[str], None]) -> dict[str, object]:
    started = time.perf_counter()
    variants = [v for v in VARIANTS if args.only is None or v.id in args.only]
    results: list[TargetResult] = []
    with RedisProcess(args.aof) as server:
        bench = Bench(server, args)
        try:
            for variant in variants:
                result = bench.run_target(variant, progress)
                if result.status != "ok":
                    progress(f"{variant.label}: {result.status} ({result.reason})")
                results.append(result)
            version = server.version()
            persistence = server.persistence
        finally:
            bench.close()
    return {
        "redis_version": version,
        "persistence": persistence,
        "python": sys.version.split()[0],
        "runs": args.runs,
        "rate": args.rate,
        "lag_seconds": args.lag_seconds,
        "tick_ms": args.tick_ms,
        "paces": list(args.pace),
        "seconds": round(time.perf_counter() - started, 1),
        "targets": [target_json(r) for r in results],
    }


def target_json(result: TargetResult) -> dict[str, object]:
    entry = asdict(result)
    entry["id"] = result.variant.id
    entry["target"] = result.variant.label
    del entry["variant"]
    return entry


def detail(t: dict[str, Any]) -> str:
    """A target's line under the table: where its runs went, what it made, what went wrong (the
    relay's warnings: the first 3, the rest counted; --json has them all)."""
    head = f"{t['target']} ({t['queue']})" if t["queue"] else t["target"]
    if t["status"] != "ok":
        head += f": {t['status']}: {t['reason']}"
    warnings = [n for n in t["notes"] if n.startswith(("warning:", "error:"))]
    notes = [n for n in t["notes"] if n not in warnings]
    shown = notes + warnings[:3]
    if len(warnings) > 3:
        shown.append(f"... {len(warnings) - 3} more relay warnings")
    return head + (": " + "; ".join(shown) if shown else "")


def ms(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"  # NaN: no figure


def report(figures: dict[str, object]) -> str:
    targets = figures["targets"]
    assert isinstance(targets, list)
    paces = figures["paces"]
    assert isinstance(paces, list)
    header = ["target", "runs", "runs/s", "open ms"]
    for pace in paces:
        name = "lag" if pace == "spread" else "burst"
        header += [f"{name} p50 ms", f"{name} p99 ms"]
    header.append("notes")
    rows = []
    details = []
    for t in targets:
        details.append(detail(t))
        if t["status"] != "ok":
            row = [t["target"], "-", "-", "-", *(["-", "-"] * len(paces)), t["status"]]
            rows.append(row)
            continue
        lags = {lag["pace"]: lag for lag in t["lags"]}
        row = [t["target"], f"{t['runs']:,}", f"{t['runs_per_s']:,.0f}", f"{t['open_ms']:.0f}"]
        for pace in paces:
            lag = lags.get(pace)
            row += [ms(lag["p50_ms"]), ms(lag["p99_ms"])] if lag else ["-", "-"]
        held = f"{t['held']:,} in the target"
        extra = [
            n
            for n in t["notes"]
            if n.startswith(("cronlease_relay", "deliverers")) or "NOT removed" in n
        ]
        warned = sum(1 for n in t["notes"] if n.startswith(("warning:", "error:")))
        if warned:
            extra.append(f"{warned} relay warnings: figures disturbed")
        row.append("; ".join([held, *extra]))
        rows.append(row)
    offered = (
        f"lag: {figures['rate']:,} runs/s offered for {figures['lag_seconds']} s per pace"
        + (f", spread = every {figures['tick_ms']} ms" if "spread" in paces else "")
        + (", burst = all at each second" if "instant" in paces else "")
    )
    title = (
        f"cronlease outbox relay: {figures['runs']:,} runs pre-filled per target, then "
        f"{offered}; redis {figures['redis_version']} ({figures['persistence']}), "
        f"python {figures['python']}, {figures['seconds']} s"
    )
    note = (
        "runs/s: Relay.lead() -> the last run confirmed by the target (open ms: -> the first "
        "batch confirmed, connecting and checks included);\n"
        "lag: the target's confirmation (deliver() returned) - enqueued_at (Redis TIME, ms "
        "truncated: up to +1 ms); p50/p99 over every run offered in the phase;\n"
        "in the target: counted there afterwards (distinct run ids of rows, jobs, messages, "
        "list entries) = runs offered; the outbox drained."
    )
    body = table(header, rows) if rows else "(no target measured)"
    return f"{title}\n\n{body}\n\n{note}\n\n" + "\n".join(details)


# --- arguments ----------------------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def only_arg(text: str) -> frozenset[str]:
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    known = {v.id for v in VARIANTS}
    unknown = sorted(chosen - known)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown target(s) {', '.join(unknown) or '(none)'}; known: {', '.join(sorted(known))}"
        )
    return chosen


def pace_arg(text: str) -> tuple[str, ...]:
    if text == "both":
        return PACES
    if text not in PACES:
        raise argparse.ArgumentTypeError(f"{text!r}: one of spread, instant, both")
    return (text,)


def tick_arg(text: str) -> int:
    value = positive(text)
    if value > 1000 or 1000 % value:
        raise argparse.ArgumentTypeError(f"{text}: a divisor of 1000 (1, 2, 5, 10, 20, ...)")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--runs", type=positive, default=20_000, help="runs pre-filled for the throughput"
    )
    parser.add_argument(
        "--rate",
        type=positive,
        default=1000,
        help="runs/s offered in the lag phases (= every-second schedules); default 1000",
    )
    parser.add_argument(
        "--lag-seconds", type=positive, default=5, help="seconds of offered load per pace"
    )
    parser.add_argument(
        "--pace",
        type=pace_arg,
        default=PACES,
        help="spread (slices every --tick-ms), instant (all at each second) or both (default)",
    )
    parser.add_argument("--tick-ms", type=tick_arg, default=10, help="spread's tick; default 10")
    parser.add_argument(
        "--only",
        type=only_arg,
        help="comma-separated targets: " + ", ".join(v.id for v in VARIANTS),
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "CRONLEASE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="a PostgreSQL database to make a scratch schema in",
    )
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument(
        "--timeout",
        type=positive,
        default=120,
        help="seconds a phase may take to be confirmed before the target counts as failed",
    )
    add_aof_flag(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        result = run(args, progress)
    except KeyboardInterrupt:
        print("interrupted; what it made is removed", file=sys.stderr)
        return 130
    print(json.dumps(result) if args.json else report(result))
    targets = result["targets"]
    assert isinstance(targets, list)
    return 1 if any(t["status"] == "failed" for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
