"""Redis's cost per run of each target at one big instant, beside the cronlease stream's.

    python bench/bench_targets.py [--schedules 10000] [--rounds 3] [--only rq-json,arq] [--json]

About 40 s with the defaults (most of it Python preparing the payloads).

Starts its own redis-server (no persistence unless --aof). For each target (stream, celery,
celery in db 1, rq pickle, rq json, sidekiq, arq, dramatiq, bullmq) it takes a config of
`--schedules` `every: 1s` schedules on one queue `bench` of that target (the schedules are parsed
once with parse_config; each target's `queues:` entry is validated by parse_config too), and per
round: FLUSHALL, takes the lease with Scripts.acquire, builds one instant's fires (every schedule
at the same second), prepares them ahead with RoutedTarget.prepare (the Python encoding, as the
leader does before the instant) and sends them with RoutedTarget.send. Every fire must come back
ENQUEUED and the target's own queue (or the stream) must then hold exactly one job per run.

Rounds go target by target, then again (`--warmup` unmeasured rounds first: Redis's first
instant also grows its heap, a cost a long-running leader's Redis has paid already). Measured per
round, printed as the median of `--rounds`:
- redis us/run: Redis's own time in the enqueue scripts, `INFO commandstats` cmdstat_evalsha
  usec delta / runs (the script's commands included; reading the request off the socket not);
- x stream: that figure over the stream's;
- cpu us/run: Redis's process CPU (`INFO cpu` user + sys) delta / runs, which adds parsing the
  requests' arguments (bigger payloads cost more here);
- us/call: evalsha usec / script calls: how long one call blocks every other client, on average;
- send ms: wall time of RoutedTarget.send (every call pipelined on one connection);
- prepare us/run: wall time of RoutedTarget.prepare / runs (payloads and RESP built in Python);
- wire B/run: bytes of the RESP-encoded requests / runs;
- mem B/run: `INFO memory` used_memory delta / runs, each side taken with a fresh idle sending
  connection (a big pipeline leaves the sender's query buffer grown): the jobs, their queues and
  the cursor hash's fields (cursor B/run: MEMORY USAGE of the cursor / runs).

A target whose module is missing or fails to load, or whose options parse_config refuses, is
shown as "not available" with the reason; one that fails while running, as "failed".
"""

from __future__ import annotations

import argparse
import gc
import json
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from benchkit import RedisProcess, add_aof_flag, exit_on_sigterm, poll_until, table

from scheduler.core.config import parse_config
from scheduler.core.queues import QueueSpec
from scheduler.core.runs import DueFire, Lease, Outcome, Trigger
from scheduler.core.schedule import Schedule
from scheduler.store.connection import connect
from scheduler.store.keys import Keys
from scheduler.store.lua import ENQUEUE_STREAM, ENQUEUE_TARGET
from scheduler.store.scripts import EnqueueBatch, Scripts
from scheduler.targets.router import PreparedRoutes, RoutedTarget

REPLICA_ID = "bench"
LEASE_TTL_MS = 3_600_000  # nobody competes for it here
QUEUE = "bench"


@dataclass(frozen=True)
class Variant:
    id: str  # what --only takes
    label: str
    queue_yaml: str | None  # the `queues: bench:` entry; None: a cronlease stream


VARIANTS = (
    Variant("stream", "stream", None),
    Variant("celery", "celery", "{target: celery}"),
    Variant("celery-db1", "celery db 1", "{target: celery, db: 1}"),
    Variant("rq-pickle", "rq pickle", "{target: rq, serializer: pickle}"),
    Variant("rq-json", "rq json", "{target: rq, serializer: json}"),
    Variant("sidekiq", "sidekiq", "{target: sidekiq}"),
    Variant("arq", "arq", "{target: arq}"),
    Variant("dramatiq", "dramatiq", "{target: dramatiq}"),
    Variant("bullmq", "bullmq", "{target: bullmq}"),
)


@dataclass(frozen=True)
class Round:
    runs: int
    script_calls: int
    redis_us_per_run: float
    redis_cpu_us_per_run: float
    us_per_call: float
    send_ms: float
    prepare_us_per_run: float
    wire_bytes_per_run: float
    memory_bytes_per_run: float
    cursor_bytes_per_run: float


@dataclass
class TargetResult:
    variant: Variant
    queue: str  # how validate names where the runs go
    status: str = "ok"  # ok | not available | failed
    reason: str = ""
    rounds: list[Round] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(r, name) for r in self.rounds)


def schedules_yaml(count: int) -> str:
    lines = ["schedules:"]
    for i in range(count):
        lines += [
            f"  bench-{i:05d}:",
            "    every: 1s",
            "    job: bench.job",
            f"    args: {{n: {i}, kind: bench}}",
            f"    queue: {QUEUE}",
        ]
    return "\n".join(lines) + "\n"


def queue_spec(variant: Variant) -> dict[str, QueueSpec]:
    """The variant's `queues:` mapping, validated by parse_config with one schedule on it."""
    if variant.queue_yaml is None:
        return {}
    text = f"queues:\n  {QUEUE}: {variant.queue_yaml}\n" + schedules_yaml(1)
    return dict(parse_config(text, f"{variant.id}.yaml").queues)


def script_stats(client: redis.Redis) -> dict[str, Any]:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    cpu = client.info("cpu")
    return {
        "evalsha_calls": int(stats.get("calls", 0)),
        "evalsha_usec": int(stats.get("usec", 0)),
        "failed_calls": int(stats.get("failed_calls", 0)) + int(stats.get("rejected_calls", 0)),
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
    }


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def batches(prepared: PreparedRoutes) -> list[EnqueueBatch]:
    return [b for b in (prepared.targets, prepared.stream and prepared.stream.commands) if b]


def wire_bytes(prepared: PreparedRoutes) -> int:
    total = 0
    for batch in batches(prepared):
        if batch.packed is None:
            raise RuntimeError("the client gave no RESP packer: cannot count the request bytes")
        total += sum(len(chunk) for packed in batch.packed for chunk in packed)
    return total


class Bench:
    def __init__(self, server: RedisProcess, schedules: Sequence[Schedule]) -> None:
        self.server = server
        self.schedules = schedules
        self.keys = Keys("cronlease")
        self.admin = server.client()
        self.client = connect(server.url, 30.0, f"cronlease-{REPLICA_ID}")
        self.scripts = Scripts(self.client, self.keys)
        # Loaded once (FLUSHALL keeps scripts): no round pays a NOSCRIPT and a SCRIPT LOAD.
        self.client.script_load(ENQUEUE_STREAM)
        self.client.script_load(ENQUEUE_TARGET)

    def close(self) -> None:
        self.client.close()
        self.admin.close()

    def lease(self) -> tuple[Lease, int]:
        reply = self.scripts.acquire(REPLICA_ID, LEASE_TTL_MS, secrets.token_hex(8))
        if reply.token == 0:
            raise RuntimeError("could not take the lease on a flushed Redis")
        lease = Lease(f"{reply.token}:{REPLICA_ID}", reply.token, REPLICA_ID)
        return lease, int(reply.redis_time_s)

    def fresh_sender(self) -> None:
        """Replace the sending connection by a new idle one, once Redis has freed the old."""
        self.client.connection_pool.disconnect()
        self.client.ping()  # connects: our client and the admin's are then all there are
        poll_until(
            lambda: int(self.admin.info("clients")["connected_clients"]) == 2,
            5.0,
            0.001,
            "the old sending connection to be gone from Redis",
        )

    def queued(self, router: RoutedTarget) -> int:
        """Jobs waiting in the target's own queue (or entries in the stream)."""
        encoder = router.encoder(QUEUE)
        if encoder is None:
            return int(self.admin.xlen(self.keys.queue(QUEUE)))
        db = encoder.spec.db or 0
        client = self.admin if db == 0 else self.server.client(db=db)
        try:
            count = 0
            for length in encoder.lengths():
                size = client.llen if length.kind == "list" else client.zcard
                count += int(size(length.key))
            return count
        finally:
            if client is not self.admin:
                client.close()

    def round(self, router: RoutedTarget) -> Round:
        self.admin.execute_command("FLUSHALL", "SYNC")
        lease, now_s = self.lease()
        fire_ts = now_s - 1  # never early for the script (it refuses a fire after Redis's TIME)
        fires = [DueFire(schedule, fire_ts, Trigger.SCHEDULED) for schedule in self.schedules]
        runs = len(fires)
        gc.collect()
        started = time.perf_counter()
        prepared = router.prepare(lease, fires, float(fire_ts))
        prepare_s = time.perf_counter() - started
        # used_memory counts the clients' buffers too, and the sender's query buffer stays
        # grown after a big pipeline until Redis trims it: measure with a fresh idle sender.
        self.fresh_sender()
        memory_before = used_memory(self.admin)
        before = script_stats(self.admin)
        started = time.perf_counter()
        written = router.send(prepared)
        send_s = time.perf_counter() - started
        after = script_stats(self.admin)
        self.fresh_sender()
        memory = used_memory(self.admin) - memory_before
        wrong = [o for o in written.outcomes if o is not Outcome.ENQUEUED]
        if wrong:
            raise RuntimeError(f"{len(wrong)} of {runs} runs not enqueued (first: {wrong[0]})")
        if after["failed_calls"] != before["failed_calls"]:
            raise RuntimeError("an enqueue script call failed inside Redis")
        queued = self.queued(router)
        if queued != runs:
            raise RuntimeError(f"{queued} jobs queued in the target after {runs} runs")
        cursor = int(self.admin.memory_usage(self.keys.cursor, samples=0) or 0)
        calls = after["evalsha_calls"] - before["evalsha_calls"]
        usec = after["evalsha_usec"] - before["evalsha_usec"]
        return Round(
            runs=runs,
            script_calls=calls,
            redis_us_per_run=usec / runs,
            redis_cpu_us_per_run=(after["cpu_s"] - before["cpu_s"]) * 1e6 / runs,
            us_per_call=usec / calls if calls else 0.0,
            send_ms=send_s * 1000,
            prepare_us_per_run=prepare_s * 1e6 / runs,
            wire_bytes_per_run=wire_bytes(prepared) / runs,
            memory_bytes_per_run=memory / runs,
            cursor_bytes_per_run=cursor / runs,
        )


def make_router(bench: Bench, variant: Variant) -> tuple[RoutedTarget, str]:
    queues = queue_spec(variant)
    router = RoutedTarget(bench.scripts, bench.keys, queues)  # imports the target's module
    spec = queues.get(QUEUE)
    return router, "stream" if spec is None else spec.describe()


def run(args: argparse.Namespace, progress: Callable[[str], None]) -> dict[str, object]:
    started = time.perf_counter()
    config = parse_config(schedules_yaml(args.schedules), "bench.yaml")
    variants = [v for v in VARIANTS if args.only is None or v.id in args.only]
    results: list[TargetResult] = []
    routers: dict[str, RoutedTarget] = {}
    with RedisProcess(args.aof) as server:
        bench = Bench(server, config.schedules)
        try:
            for variant in variants:
                try:
                    router, where = make_router(bench, variant)
                except Exception as error:  # a module missing, not importable, or refused
                    reason = f"{type(error).__name__}: {error}"
                    results.append(TargetResult(variant, "", "not available", reason))
                    progress(f"{variant.label}: not available ({results[-1].reason})")
                    continue
                routers[variant.id] = router
                results.append(TargetResult(variant, where))
            # Round-major: every target once, then again, so a slow moment of the machine
            # spreads over all of them instead of landing on one.
            for number in range(1 - args.warmup, args.rounds + 1):
                name = f"round {number}/{args.rounds}" if number > 0 else "warm-up"
                for result in results:
                    if result.status != "ok":
                        continue
                    try:
                        r = bench.round(routers[result.variant.id])
                    except Exception as error:
                        result.status, result.reason = "failed", f"{type(error).__name__}: {error}"
                        progress(f"{result.variant.label}: failed ({result.reason})")
                        continue
                    if number > 0:
                        result.rounds.append(r)
                    progress(
                        f"{name} {result.variant.label}: "
                        f"{r.redis_us_per_run:.2f} redis us/run, send {r.send_ms:.0f} ms, "
                        f"prepare {r.prepare_us_per_run:.1f} us/run"
                    )
            version = server.version()
            persistence = server.persistence
        finally:
            bench.close()
    return figures(args, results, version, persistence, time.perf_counter() - started)


def figures(
    args: argparse.Namespace,
    results: Sequence[TargetResult],
    version: str,
    persistence: str,
    seconds: float,
) -> dict[str, object]:
    stream = next(
        (r for r in results if r.variant.id == "stream" and r.status == "ok" and r.rounds), None
    )
    stream_us = stream.median("redis_us_per_run") if stream else None
    targets: list[dict[str, object]] = []
    for result in results:
        entry: dict[str, object] = {
            "id": result.variant.id,
            "target": result.variant.label,
            "queue": result.queue,
            "status": result.status,
            "reason": result.reason,
        }
        if result.status == "ok" and result.rounds:
            medians = {
                name: result.median(name) for name in Round.__dataclass_fields__ if name != "runs"
            }
            medians["runs"] = result.rounds[0].runs
            medians["x_stream"] = (
                medians["redis_us_per_run"] / stream_us if stream_us else float("nan")
            )
            entry["median"] = medians
        entry["rounds"] = [asdict(r) for r in result.rounds]
        targets.append(entry)
    return {
        "redis_version": version,
        "persistence": persistence,
        "python": sys.version.split()[0],
        "schedules": args.schedules,
        "rounds": args.rounds,
        "warmup_rounds": args.warmup,
        "seconds": round(seconds, 1),
        "targets": targets,
    }


def report(figures: dict[str, object]) -> str:
    targets = figures["targets"]
    assert isinstance(targets, list)
    rows = []
    others = []
    for t in targets:
        if t["status"] != "ok" or "median" not in t:
            others.append(f"{t['target']}: {t['status']} ({t['reason']})")
            continue
        m = t["median"]
        rows.append(
            (
                t["target"],
                f"{m['runs']:,}",
                f"{m['script_calls']:.0f}",
                f"{m['redis_us_per_run']:.2f}",
                f"{m['x_stream']:.2f}",
                f"{m['redis_cpu_us_per_run']:.2f}",
                f"{m['us_per_call']:,.0f}",
                f"{m['send_ms']:.0f}",
                f"{m['prepare_us_per_run']:.1f}",
                f"{m['wire_bytes_per_run']:.0f}",
                f"{m['memory_bytes_per_run']:.0f}",
                f"{m['cursor_bytes_per_run']:.0f}",
            )
        )
    header = (
        "target",
        "runs",
        "calls",
        "redis us/run",
        "x stream",
        "cpu us/run",
        "us/call",
        "send ms",
        "prepare us/run",
        "wire B/run",
        "mem B/run",
        "cursor B/run",
    )
    title = (
        f"cronlease targets: one instant of {figures['schedules']:,} runs "
        f"({figures['schedules']:,} schedules, every: 1s, one queue), median of "
        f"{figures['rounds']} rounds after {figures['warmup_rounds']} warm-up, "
        f"redis {figures['redis_version']} "
        f"({figures['persistence']}), python {figures['python']}, {figures['seconds']} s"
    )
    note = (
        "redis us/run: INFO commandstats evalsha usec / runs (Redis's time inside the enqueue "
        "scripts); x stream: over the stream's;\n"
        "cpu us/run: redis-server CPU (adds reading the requests); us/call: evalsha usec per "
        "script call (how long one call blocks Redis);\n"
        "send ms: wall time of RoutedTarget.send; prepare us/run: RoutedTarget.prepare (Python "
        "encoding, done ahead of the instant);\n"
        "wire B/run: RESP bytes sent; mem B/run: used_memory delta (a fresh idle sender both "
        "times), the cursor's share included (cursor B/run)."
    )
    body = table(header, rows) if rows else "(no target measured)"
    if others:
        body += "\n\n" + "\n".join(others)
    return f"{title}\n\n{body}\n\n{note}"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--schedules", type=positive, default=10_000, help="schedules, so runs of the instant"
    )
    parser.add_argument(
        "--rounds", type=positive, default=3, help="rounds per target; the median is shown"
    )
    parser.add_argument(
        "--only",
        type=only_arg,
        help="comma-separated targets: " + ", ".join(v.id for v in VARIANTS),
    )
    parser.add_argument(
        "--warmup",
        type=non_negative,
        default=1,
        help="unmeasured rounds first (Redis's first instant also grows its heap); default 1",
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
        print("interrupted; the redis-server it started is stopped", file=sys.stderr)
        return 130
    print(json.dumps(result) if args.json else report(result))
    targets = result["targets"]
    assert isinstance(targets, list)
    return 1 if any(t["status"] == "failed" for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
