"""Batch-enqueue throughput of the real enqueue path: StreamTarget.enqueue -> ENQUEUE_STREAM.

    python bench/bench_enqueue.py [--fires 50000] [--sizes 1,10,100,500,1000,5000] [--json]
    python bench/bench_enqueue.py --only instant [--instant 10000] [--rounds 5]

Starts its own redis-server (no persistence unless --aof), builds `--schedules` `every: 1s`
schedules spread over `--queues` queues with parse_config, takes the lease with Scripts.acquire,
then for each batch size enqueues `--fires` fires, every one new (successive fire times), and
then the very same batches again, which the cursor turns into duplicates. Prints one row per
(path, batch size): wall seconds, fires per second, client CPU seconds (time.process_time) and
Redis CPU seconds (INFO cpu) per 1,000 fires, and the latency of one enqueue() call.

Then one instant against its floor (`instant`, see bench/floorkit.py): `--instant` schedules on
the same second, as the leader writes them (prepared ahead with StreamTarget.prepare, then sent
with StreamTarget.send, every cursor already set: the steady state), beside a bare pipelined
XADD of the very same 11-field entries on the same server, round for round (`--rounds`, after
one unmeasured warm-up round; medians printed). Redis us/run = INFO commandstats usec delta /
runs (cmdstat_evalsha for the script, cmdstat_xadd for the floor); x floor = the median over
rounds of the script's figure over the same round's XADD's; cpu us/run = Redis's process CPU
(INFO cpu), which adds reading and parsing the requests.
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
from typing import Any

import redis
from benchkit import RedisProcess, add_aof_flag, exit_on_sigterm, table
from floorkit import Cost, command_stats, lua_floor, schedule_entries, xadd_floor

from scheduler.core.config import parse_config
from scheduler.core.runs import DueFire, Lease, Outcome, Trigger
from scheduler.core.schedule import Schedule
from scheduler.store.connection import connect
from scheduler.store.keys import Keys
from scheduler.store.lua import ENQUEUE_STREAM
from scheduler.store.scripts import Scripts
from scheduler.targets.stream import FIRST_CALL_FIRES, MAX_FIRES_PER_CALL, StreamTarget

DEFAULT_SIZES = (1, 10, 100, 500, 1000, 5000)
SECTIONS = frozenset({"throughput", "instant"})
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
        script_calls=len(batches) * len(target.prepare(lease, batches[0]).commands.commands),
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


def take_lease(scripts: Scripts) -> tuple[Lease, float]:
    reply = scripts.acquire(REPLICA_ID, LEASE_TTL_MS, secrets.token_hex(8))
    if reply.token == 0:
        raise RuntimeError("could not take the lease on a fresh Redis")
    return Lease(f"{reply.token}:{REPLICA_ID}", reply.token, REPLICA_ID), reply.redis_time_s


def throughput(args: argparse.Namespace, server: RedisProcess) -> list[Result]:
    config = parse_config(schedules_yaml(args.schedules, args.queues), "bench.yaml")
    keys = Keys("cronlease")
    admin = server.client()
    client = connect(server.url, 10.0, f"cronlease-{REPLICA_ID}")
    try:
        scripts = Scripts(client, keys)
        lease, now_s = take_lease(scripts)
        target = StreamTarget(scripts, keys)
        fires = fire_stream(config.schedules, int(now_s) - 86_400)
        results: list[Result] = []
        for size in args.sizes:
            batches = take_batches(fires, size, args.fires)
            before = stream_entries(admin, keys, args.queues)
            results.append(measure("new", target, lease, batches, Outcome.ENQUEUED, admin))
            written = stream_entries(admin, keys, args.queues) - before
            if written != results[-1].fires:
                raise RuntimeError(f"batches of {size}: {written} entries written")
            results.append(measure("duplicate", target, lease, batches, Outcome.DUPLICATE, admin))
            if stream_entries(admin, keys, args.queues) - before != written:
                raise RuntimeError(f"batches of {size}: the duplicate pass wrote entries")
            # Each size starts from empty streams (the cursors stay: fires stay new).
            admin.delete(*(keys.queue(f"q{i}") for i in range(args.queues)))
        return results
    finally:
        client.close()
        admin.close()


@dataclass(frozen=True)
class InstantRound:
    floor: Cost
    lua_floor: Cost  # the same entries XADDed from Lua, every value passed in
    lua_call: Cost  # one entry XADDed from Lua as often: redis.call's own cost
    script: Cost
    send_ms: float  # StreamTarget.send, wall
    prepare_us_per_run: float  # StreamTarget.prepare, wall, ahead of the instant


def instant(args: argparse.Namespace, server: RedisProcess) -> list[InstantRound]:
    """One instant of `--instant` fires, floor and script round for round (the first unmeasured:
    it sets every cursor, as a steady leader finds them, and grows Redis's heap)."""
    config = parse_config(schedules_yaml(args.instant, args.queues), "instant.yaml")
    keys = Keys("cronlease-instant")
    admin = server.client()
    client = connect(server.url, 30.0, f"cronlease-{REPLICA_ID}")
    try:
        scripts = Scripts(client, keys)
        client.script_load(ENQUEUE_STREAM)  # no round pays a NOSCRIPT (a failed call)
        lease, now_s = take_lease(scripts)
        target = StreamTarget(scripts, keys)
        first_ts = int(now_s) - 3600  # never early for the script
        rounds: list[InstantRound] = []
        for number in range(args.rounds + 1):
            fire_ts = first_ts + number
            entries = schedule_entries(
                keys.queue, config.schedules, fire_ts, lease.token, REPLICA_ID
            )
            floor = xadd_floor(client, admin, entries)
            from_lua = lua_floor(client, admin, entries)
            lua_call = lua_floor(client, admin, entries, repeated=True)
            fires = [DueFire(s, fire_ts, Trigger.SCHEDULED) for s in config.schedules]
            started = time.perf_counter()
            prepared = target.prepare(lease, fires, float(fire_ts))
            prepare_s = time.perf_counter() - started
            before = command_stats(admin, "evalsha")
            started = time.perf_counter()
            outcomes = target.send(prepared).outcomes
            send_s = time.perf_counter() - started
            after = command_stats(admin, "evalsha")
            wrong = sum(1 for outcome in outcomes if outcome is not Outcome.ENQUEUED)
            if wrong or after.failed != before.failed:
                raise RuntimeError(f"instant {number}: {wrong} of {len(fires)} fires not enqueued")
            if number:
                rounds.append(
                    InstantRound(
                        floor=floor,
                        lua_floor=from_lua,
                        lua_call=lua_call,
                        script=Cost.between(before, after, len(fires), send_s),
                        send_ms=send_s * 1000,
                        prepare_us_per_run=prepare_s * 1e6 / len(fires),
                    )
                )
        return rounds
    finally:
        client.close()
        admin.close()


def median_cost(costs: Sequence[Cost]) -> dict[str, float]:
    return {
        name: statistics.median(getattr(cost, name) for cost in costs)
        for name in ("calls", "redis_us_per_run", "cpu_us_per_run", "us_per_call")
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    with RedisProcess(args.aof) as server:
        results = throughput(args, server) if "throughput" in args.only else []
        rounds = instant(args, server) if "instant" in args.only and args.rounds else []
        version = server.version()
        persistence = server.persistence
    figures: dict[str, object] = {
        "redis_version": version,
        "persistence": persistence,
        "schedules": args.schedules,
        "queues": args.queues,
        "fires_per_size": args.fires,
        "max_fires_per_script_call": MAX_FIRES_PER_CALL,
        "first_call_fires": FIRST_CALL_FIRES,
        "results": [asdict(result) for result in results],
    }
    if rounds:
        floor = median_cost([r.floor for r in rounds])
        script = median_cost([r.script for r in rounds])
        lua = median_cost([r.lua_floor for r in rounds])
        lua_call = median_cost([r.lua_call for r in rounds])
        figures["instant"] = {
            "fires": args.instant,
            "rounds": len(rounds),
            "floor": floor,
            "lua_floor": lua,
            "lua_call": lua_call,
            "script": script,
            # Each round's script against its own floor (the load of a shared machine drifts
            # between rounds more than within one), then the median of those.
            "ratio": statistics.median(
                r.script.redis_us_per_run / r.floor.redis_us_per_run for r in rounds
            ),
            "lua_ratio": statistics.median(
                r.lua_floor.redis_us_per_run / r.floor.redis_us_per_run for r in rounds
            ),
            "lua_call_ratio": statistics.median(
                r.lua_call.redis_us_per_run / r.floor.redis_us_per_run for r in rounds
            ),
            "script_over_lua": statistics.median(
                r.script.redis_us_per_run / r.lua_floor.redis_us_per_run for r in rounds
            ),
            "cpu_ratio": statistics.median(
                r.script.cpu_us_per_run / r.floor.cpu_us_per_run for r in rounds
            ),
            "send_ms": statistics.median(r.send_ms for r in rounds),
            "prepare_us_per_run": statistics.median(r.prepare_us_per_run for r in rounds),
            "per_round": [asdict(r) for r in rounds],
        }
    return figures


def report(figures: dict[str, object]) -> str:
    parts = []
    results = figures["results"]
    assert isinstance(results, list)
    if results:
        parts.append(throughput_report(figures, results))
    moment = figures.get("instant")
    if isinstance(moment, dict):
        parts.append(instant_report(figures, moment))
    return "\n\n".join(parts)


def throughput_report(figures: dict[str, object], results: list[dict[str, Any]]) -> str:
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


def instant_report(figures: dict[str, object], moment: dict[str, Any]) -> str:
    floor, script = moment["floor"], moment["script"]
    header = ("write", "redis us/run", "x floor", "cpu us/run", "x floor cpu", "calls", "us/call")

    def row(name: str, cost: dict[str, float], ratio: float | None) -> tuple[str, ...]:
        cpu_ratio = cost["cpu_us_per_run"] / floor["cpu_us_per_run"]
        return (
            name,
            f"{cost['redis_us_per_run']:.2f}",
            "1.00" if ratio is None else f"{ratio:.2f}",
            f"{cost['cpu_us_per_run']:.2f}",
            f"{cpu_ratio:.2f}",
            f"{cost['calls']:,.0f}",
            f"{cost['us_per_call']:.1f}",
        )

    rows = [
        row("bare XADD, pipelined (the floor)", floor, None),
        row("XADD from Lua, one entry repeated", moment["lua_call"], moment["lua_call_ratio"]),
        row("XADD from Lua, every value passed", moment["lua_floor"], moment["lua_ratio"]),
        row("ENQUEUE_STREAM (StreamTarget.send)", script, moment["ratio"]),
    ]
    title = (
        f"one instant of {moment['fires']:,} fires over {figures['queues']} queues against its "
        f"floor, median of {moment['rounds']} rounds (every cursor set; script calls of "
        f"{figures['first_call_fires']} then {figures['max_fires_per_script_call']} fires)"
    )
    note = (
        f"script send (wall): {moment['send_ms']:.1f} ms; prepared ahead: "
        f"{moment['prepare_us_per_run']:.1f} us/run. redis us/run: INFO commandstats usec "
        "(cmdstat_xadd, cmdstat_evalsha) / runs; cpu us/run: INFO cpu, which adds reading and "
        "parsing the requests. XADD from Lua (XADD_FROM_LUA, scheduler/store/lua/floor.py): "
        "the least any script that writes runs pays; 'one entry repeated' is redis.call('XADD') "
        "alone. ENQUEUE_STREAM / XADD from Lua, every value passed: "
        f"{moment['script_over_lua']:.2f}."
    )
    return f"{title}\n\n{table(header, rows)}\n\n{note}"


def only_arg(text: str) -> frozenset[str]:
    parts = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = parts - SECTIONS
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"sections are {', '.join(sorted(SECTIONS))}")
    return parts


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
    parser.add_argument(
        "--only",
        type=only_arg,
        default=SECTIONS,
        help="comma-separated sections: throughput, instant (default both)",
    )
    parser.add_argument(
        "--instant", type=positive, default=10_000, help="instant: fires on the same second"
    )
    parser.add_argument(
        "--rounds", type=positive, default=5, help="instant: measured rounds (median printed)"
    )
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
