"""The status page with many schedules: response times of /, /api/status and a filtered page.

A real `cronlease run` (leading, with its metrics port) on a private redis-server, a realistic
mix of schedules (crons in eight time zones, intervals, H-hashed crons) spread over queues, every
schedule's cursor set and a few thousand runs in the streams; then each URL is fetched `--repeat`
times from this process, uncached (the page's 1 s cache is waited out between fetches) and
cached, and the median and worst are printed.

    python bench/bench_status_page.py                  # 10,000 schedules
    python bench/bench_status_page.py --schedules 1000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchkit import RedisProcess, exit_on_sigterm, free_port, poll_until, table
from scalekit import mixed_yaml

from scheduler.core.config import parse_config
from scheduler.store.keys import Keys

KEYS = Keys("cronlease")
CACHE_S = 1.0  # scheduler/web/app.py CACHE_S


def fetch(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as reply:
        body = reply.read()
    return (time.perf_counter() - started) * 1000, len(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    exit_on_sigterm()
    with RedisProcess() as server, tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "schedules.yaml"
        config.write_text(mixed_yaml("s", args.schedules, args.queues))
        client = server.client()
        now = int(client.time()[0])
        # Every schedule has fired once, as on a cluster that has run for a while.
        names = [schedule.name for schedule in parse_config(config.read_text()).schedules]
        client.hset(KEYS.cursor, mapping={name: now - 60 for name in names})
        port = free_port()
        log = open(Path(folder) / "daemon.log", "wb")  # noqa: SIM115 - closed below
        daemon = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "run", "--config", str(config),
             "--redis-url", server.url, "--replica-id", "bench", "--metrics-port", str(port),
             "--metrics-host", "127.0.0.1"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            poll_until(lambda: client.get(KEYS.leader), 60, 0.1, "the daemon leads")
            base = f"http://127.0.0.1:{port}"
            urls = {
                "/": base + "/",
                "/api/status (all schedules)": base + "/api/status",
                "/api/status?limit=100 (the page's request)": base + "/api/status?limit=100",
                "/api/status?q=...&limit=100 (filtered)": base + "/api/status?q=s-0099&limit=100",
                "/api/runs?limit=200": base + "/api/runs?limit=200",
            }
            rows = []
            figures = {}
            for label, url in urls.items():
                fetch(url)  # warm: the first request builds the page's Redis client
                cold, warm = [], []
                for _ in range(args.repeat):
                    time.sleep(CACHE_S + 0.05)
                    cold.append(fetch(url))
                    warm.append(fetch(url))
                size = cold[-1][1]
                median = statistics.median(ms for ms, _ in cold)
                worst = max(ms for ms, _ in cold)
                cached = statistics.median(ms for ms, _ in warm)
                figures[label] = {"median_ms": median, "max_ms": worst, "cached_ms": cached,
                                  "bytes": size}  # fmt: skip
                rows.append((label, f"{median:.1f}", f"{worst:.1f}", f"{cached:.1f}", size))
        finally:
            daemon.terminate()
            daemon.wait(15)
            log.close()
    if args.json:
        print(json.dumps({"schedules": args.schedules, "queues": args.queues, "urls": figures}))
    else:
        print(f"{args.schedules} schedules over {args.queues} queues, {args.repeat} fetches each")
        header = ("URL", "MEDIAN MS", "MAX MS", "CACHED MS", "BYTES")
        print(table(header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
