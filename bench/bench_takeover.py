"""How long a takeover after a long outage keeps the leader's loop busy planning.

A new leader finds every schedule's cursor days old: for each one it counts the fires it drops
(misfires) and plans the catch-up window. Builds N distinct cron schedules (default 1,000; `H`
hashes each name to its own minute, so no two share a plan), cursors `--behind` (4 days) old,
then drives the pure ticker the way the daemon does: `due(now, budget)` turn after turn, each
turn cut at the daemon's planning budget, settling each batch. Prints the total planning time,
the longest single turn (what the watchdog and the liveness probe see), the turns, the fires
and the misfires counted.

Run from the repository root: `python bench/bench_takeover.py [--count N] [--behind-days D]`.
Not a test; no Redis and no clock is read for fire times (only for timing the planning).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone

from scheduler.core import catchup
from scheduler.core.catchup import MISFIRE_COUNT_LIMIT
from scheduler.core.config import parse_config
from scheduler.core.ticker import Ticker
from scheduler.daemon.writer import PLAN_BUDGET_MIN_S, PLAN_BUDGET_TTLS

NOW = datetime(2026, 1, 7, 12, 0, 0, 500000, tzinfo=timezone.utc).timestamp()


ZONES = (
    "UTC", "Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles",
    "America/Sao_Paulo", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland",
    "Africa/Cairo", "Asia/Singapore", "Europe/Paris", "America/Chicago", "Asia/Dubai",
    "Europe/Moscow", "America/Denver", "Asia/Shanghai", "Europe/Madrid", "America/Toronto",
)  # fmt: skip


def build(count: int) -> str:
    """Every-minute crons, each on its own second and zone: 60 x 20 distinct timelines."""
    lines = ["schedules:"]
    for i in range(count):
        zone = ZONES[(i // 60) % len(ZONES)]
        lines.append(f"  s{i}: {{cron: '{i % 60} * * * * *', job: j, timezone: {zone}}}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--behind-days", type=float, default=4.0)
    parser.add_argument("--ttl", type=float, default=10.0, help="lease TTL the budget is from")
    parser.add_argument(
        "--misfire-limit",
        type=int,
        default=MISFIRE_COUNT_LIMIT,
        help="misfires counted per schedule (1000 before the takeover fix)",
    )
    parser.add_argument(
        "--no-budget", action="store_true", help="plan in one turn (as before the takeover fix)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    catchup.MISFIRE_COUNT_LIMIT = args.misfire_limit

    config = parse_config(build(args.count))
    cursors = {s.name: int(NOW - args.behind_days * 86400) for s in config.schedules}
    budget_s = max(PLAN_BUDGET_MIN_S, PLAN_BUDGET_TTLS * args.ttl)
    ticker = Ticker(config.schedules)

    started = time.perf_counter()
    ticker.start(cursors, NOW)
    start_s = time.perf_counter() - started
    turns, fires, misfires, longest_s = 0, 0, 0, 0.0
    total_started = time.perf_counter()
    while True:
        turn_started = time.perf_counter()
        deadline = turn_started + budget_s
        over = None if args.no_budget else (lambda d=deadline: time.perf_counter() > d)
        batch = ticker.due(NOW, over)
        ticker.settle()
        longest_s = max(longest_s, time.perf_counter() - turn_started)
        turns += 1
        fires += len(batch.fires)
        misfires += sum(batch.misfired.values())
        if not batch.partial and (ticker.next_due() or NOW + 1) > NOW:
            break
    total_s = time.perf_counter() - total_started
    figures = {
        "schedules": args.count,
        "behind_days": args.behind_days,
        "budget_s": budget_s,
        "misfire_count_limit": args.misfire_limit,
        "budget": not args.no_budget,
        "start_s": round(start_s, 3),
        "planning_s": round(total_s, 3),
        "per_schedule_ms": round(1000 * total_s / args.count, 2),
        "longest_turn_s": round(longest_s, 3),
        "turns": turns,
        "fires": fires,
        "misfires_counted": misfires,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>22}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
