"""Batch-enqueue throughput of the real enqueue path: StreamTarget.enqueue -> ENQUEUE_STREAM.

    python bench/bench_enqueue.py [--fires 50000] [--sizes 1,10,100,500,1000,5000] [--json]

Starts its own redis-server (no persistence unless --aof), builds `--schedules` `every: 1s`
schedules spread over `--queues` queues with parse_config, takes the lease with Scripts.acquire,
then for each batch size enqueues `--fires` fires, every one new (successive fire times), and
then the very same batches again, which the cursor turns into duplicates. Prints one row per
(path, batch size): wall seconds, fires per second, client CPU seconds (time.process_time) and
Redis CPU seconds (INFO cpu) per 1,000 fires, and the latency of one enqueue() call.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import redis
from benchkit import RedisProcess, add_aof_flag, exit_on_sigterm, table

from scheduler.core.config import parse_config
from scheduler.core.runs import DueFire, Lease, Outcome, Trigger
from scheduler.core.schedule import Schedule
from scheduler.store.connection import connect
from scheduler.store.keys import Keys
from scheduler.store.scripts import Scripts
from scheduler.targets.stream import MAX_FIRES_PER_CALL, StreamTarget

DEFAULT_SIZES = (1, 10, 100, 500, 1000, 5000)
REPLICA_ID = "bench"
LEASE_TTL_MS = 3_600_000  # nobody competes for it here


@dataclass(frozen=True)
class Result:
    path: str  # "new" or "duplicate"
    batch_size: int
    enqueue_calls: int
    script_calls: int
    fires: int
    seconds: float
    fires_per_s: float
    client_cpu_s_per_1k: float
    redis_cpu_s_per_1k: float
    call_ms_p50: float
    call_ms_max: float


def schedules_yaml(count: int, queues: int) -> str:
    lines = ["schedules:"]
    for i in range(count):
        lines += [
            f"  bench-{i:05d}:",
            "    every: 1s",
            "    job: bench.job",
            f"    args: {{n: {i}, kind: bench}}",
            f"    queue: q{i % queues}",
        ]
    return "\n".join(lines) + "\n"


def fire_stream(schedules: Sequence[Schedule], first_ts: int) -> Iterator[DueFire]:
    """Endless fires, time-major: every schedule at t, then every schedule at t + 1, ..."""
    ts = first_ts
    while True:
        for schedule in schedules:
            yield DueFire(schedule, ts, Trigger.SCHEDULED)
        ts += 1


def take_batches(fires: Iterator[DueFire], size: int, total: int) -> list[list[DueFire]]:
    return [[next(fires) for _ in range(size)] for _ in range(max(1, total // size))]


def redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def measure(
    path: str,
    target: StreamTarget,
    lease: Lease,
    batches: Sequence[Sequence[DueFire]],
    expected: Outcome,
    admin: redis.Redis,
) -> Result:
    size = len(batches[0])
    fires = size * len(batches)
    latencies: list[float] = []
    wrong = 0
    redis_before = redis_cpu_s(admin)
    cpu_before = time.process_time()
    started = time.perf_counter()
    for batch in batches:
        call_started = time.perf_counter()
        outcomes = target.enqueue(lease, batch).outcomes
        latencies.append(time.perf_counter() - call_started)
        wrong += sum(1 for outcome in outcomes if outcome is not expected)
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_before
    redis_cpu = redis_cpu_s(admin) - redis_before
    if wrong:
        raise RuntimeError(f"{path} batches of {size}: {wrong} of {fires} fires not {expected}")
    return Result(
        path=path,
        batch_size=size,
        enqueue_calls=len(batches),
        script_calls=len(batches) * len(target.prepare(lease, batches[0]).counts),
        fires=fires,
        seconds=seconds,
        fires_per_s=fires / seconds,
        client_cpu_s_per_1k=client_cpu / fires * 1000,
        redis_cpu_s_per_1k=redis_cpu / fires * 1000,
        call_ms_p50=statistics.median(latencies) * 1000,
        call_ms_max=max(latencies) * 1000,
    )


def stream_entries(admin: redis.Redis, keys: Keys, queues: int) -> int:
    return sum(int(admin.xlen(keys.queue(f"q{i}"))) for i in range(queues))


def run(args: argparse.Namespace) -> dict[str, object]:
    config = parse_config(schedules_yaml(args.schedules, args.queues), "bench.yaml")
    keys = Keys("cronlease")
    with RedisProcess(args.aof) as server:
        admin = server.client()
        client = connect(server.url, 10.0, f"cronlease-{REPLICA_ID}")
        try:
            scripts = Scripts(client, keys)
            reply = scripts.acquire(REPLICA_ID, LEASE_TTL_MS, secrets.token_hex(8))
            if reply.token == 0:
                raise RuntimeError("could not take the lease on a fresh Redis")
            lease = Lease(f"{reply.token}:{REPLICA_ID}", reply.token, REPLICA_ID)
            target = StreamTarget(scripts, keys)
            fires = fire_stream(config.schedules, int(reply.redis_time_s) - 86_400)
            results: list[Result] = []
            for size in args.sizes:
                batches = take_batches(fires, size, args.fires)
                before = stream_entries(admin, keys, args.queues)
                results.append(measure("new", target, lease, batches, Outcome.ENQUEUED, admin))
                written = stream_entries(admin, keys, args.queues) - before
                if written != results[-1].fires:
                    raise RuntimeError(f"batches of {size}: {written} entries written")
                results.append(
                    measure("duplicate", target, lease, batches, Outcome.DUPLICATE, admin)
                )
                if stream_entries(admin, keys, args.queues) - before != written:
                    raise RuntimeError(f"batches of {size}: the duplicate pass wrote entries")
                # Each size starts from empty streams (the cursors stay: fires stay new).
                admin.delete(*(keys.queue(f"q{i}") for i in range(args.queues)))
            version = server.version()
            persistence = server.persistence
        finally:
            client.close()
            admin.close()
    return {
        "redis_version": version,
        "persistence": persistence,
        "schedules": args.schedules,
        "queues": args.queues,
        "fires_per_size": args.fires,
        "max_fires_per_script_call": MAX_FIRES_PER_CALL,
        "results": [asdict(result) for result in results],
    }


def report(figures: dict[str, object]) -> str:
    results = figures["results"]
    assert isinstance(results, list)
    rows = [
        (
            r["path"],
            r["batch_size"],
            r["enqueue_calls"],
            r["script_calls"],
            r["fires"],
            f"{r['seconds']:.3f}",
            f"{r['fires_per_s']:,.0f}",
            f"{r['client_cpu_s_per_1k']:.4f}",
            f"{r['redis_cpu_s_per_1k']:.4f}",
            f"{r['call_ms_p50']:.2f}",
            f"{r['call_ms_max']:.2f}",
        )
        for r in sorted(results, key=lambda r: (r["path"] != "new", r["batch_size"]))
    ]
    header = (
        "path",
        "batch",
        "enqueues",
        "scripts",
        "fires",
        "seconds",
        "fires/s",
        "client cpu s/1k",
        "redis cpu s/1k",
        "call ms p50",
        "call ms max",
    )
    title = (
        f"cronlease enqueue throughput: {figures['schedules']} schedules (every: 1s) over "
        f"{figures['queues']} queues, {figures['fires_per_size']:,} fires per batch size, "
        f"redis {figures['redis_version']} ({figures['persistence']}), "
        f"at most {figures['max_fires_per_script_call']} fires per script call"
    )
    note = (
        "new: every fire is newer than its schedule's cursor (XADD + cursor advance); "
        "duplicate: the same batches again (cursor check only, nothing written)."
    )
    return f"{title}\n\n{table(header, rows)}\n\n{note}"


def sizes_arg(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be at least 1")
    return sizes


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--fires",
        type=positive,
        default=50_000,
        help="fires per batch size (rounded down to whole batches)",
    )
    parser.add_argument(
        "--sizes",
        type=sizes_arg,
        default=DEFAULT_SIZES,
        help="comma-separated batch sizes (fires per enqueue call)",
    )
    parser.add_argument("--schedules", type=positive, default=100, help="number of schedules")
    parser.add_argument("--queues", type=positive, default=4, help="queues they spread over")
    add_aof_flag(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    try:
        figures = run(args)
    except KeyboardInterrupt:
        print("interrupted; the redis-server it started is stopped", file=sys.stderr)
        return 130
    print(json.dumps(figures) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
