"""`cronlease worker` throughput and pick-up latency on a private redis-server.

1. Throughput: N no-op runs (default 20,000) written at once onto a queue that 1, then 4,
   worker processes (each --concurrency 8) already wait on; runs/s from the first write to the
   last acknowledgement.
2. Latency: runs written at a steady 1,000 per second for 5 s to 1 worker process
   (--concurrency 8); the job notes when it started; the added latency is job start minus the
   moment the run was written (p50, p99, max).

Run from the repository root: `python bench/bench_worker.py [--runs N]`. The worker processes
import this file for its jobs (bench.noop, bench.latency).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from scheduler.worker import job

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STREAM = "{cronlease}:queue:default"
LATENCIES = "bench:latency"
_client: redis.Redis | None = None


@job("bench.noop", retries=0)
def noop() -> None:
    """Does nothing: what is measured is the worker."""


@job("bench.latency", retries=0)
def latency(t: float) -> None:
    global _client
    started = time.time()
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    _client.rpush(LATENCIES, started - t)


def start_workers(count: int, url: str) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "BENCH_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scheduler",
                "worker",
                "--import",
                "bench_worker",
                "--redis-url",
                url,
                "--replica-id",
                f"bench-{i}",
                "--metrics-port",
                "0",
                "--concurrency",
                "8",
                "--config",
                "/nonexistent",
                "--log-level",
                "WARNING",
            ],
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for i in range(count)
    ]


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(30)


def wait_for_consumers(client: redis.Redis, count: int) -> None:
    """Until `count` workers are connected and their group exists (a consumer shows in XINFO
    only once it was delivered something)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = {str(c.get("name")) for c in client.client_list()}
        ready = sum(1 for name in names if name.startswith("cronlease-worker-bench-"))
        if ready >= count and client.exists(STREAM):
            time.sleep(0.2)  # their first reads
            return
        time.sleep(0.05)
    raise RuntimeError("the workers did not start")


def run_fields(job_name: str, i: int, args: dict[str, Any]) -> dict[str, str]:
    return {
        "run_id": f"bench-{job_name}-{i}-{time.time_ns()}",
        "job": job_name,
        "args": json.dumps(args),
        "queue": "default",
        "schedule": "bench",
        "trigger": "manual",
    }


def drained(client: redis.Redis) -> bool:
    group = client.xinfo_groups(STREAM)[0]
    return int(group["pending"]) == 0 and int(group.get("lag") or 0) == 0


def throughput(client: redis.Redis, url: str, workers: int, runs: int) -> float:
    client.flushall()
    procs = start_workers(workers, url)
    try:
        wait_for_consumers(client, workers)
        began = time.perf_counter()
        for start in range(0, runs, 1000):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(runs, start + 1000)):
                pipe.xadd(STREAM, run_fields("bench.noop", i, {}))
            pipe.execute()
        while not drained(client):
            time.sleep(0.005)
        return runs / (time.perf_counter() - began)
    finally:
        stop(procs)


def pickup_latency(client: redis.Redis, url: str, rate: int, seconds: int) -> list[float]:
    client.flushall()
    procs = start_workers(1, url)
    try:
        wait_for_consumers(client, 1)
        began = time.perf_counter()
        for i in range(rate * seconds):
            due = began + i / rate
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.001, due - time.perf_counter())))
            client.xadd(STREAM, run_fields("bench.latency", i, {"t": time.time()}))
        deadline = time.monotonic() + 30
        while client.llen(LATENCIES) < rate * seconds and time.monotonic() < deadline:
            time.sleep(0.01)
        return sorted(float(v) for v in client.lrange(LATENCIES, 0, -1))
    finally:
        stop(procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20000)
    options = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from benchkit import RedisProcess

    with RedisProcess() as server:
        client = server.client()
        print(f"redis-server {server.version()}, Python {sys.version.split()[0]}")
        for workers in (1, 4):
            rate = throughput(client, server.url, workers, options.runs)
            print(f"throughput, {workers} worker(s) x 8 threads: {rate:,.0f} runs/s")
        values = pickup_latency(client, server.url, 1000, 5)
        ms = [v * 1000 for v in values]
        p99 = ms[int(len(ms) * 0.99) - 1]
        print(
            f"pick-up latency at 1,000 runs/s ({len(ms)} runs, 1 worker x 8 threads): "
            f"p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms"
        )


if __name__ == "__main__":
    main()
