"""How fast is the pure core at scale: validate a huge schedules.yaml, compute next fires.

Builds a schedules file of N schedules (default 100,000) with a realistic mix: distinct cron
expressions (5 and 6 fields, steps, weekdays, month days, L, Jenkins-style H hashed by name),
`every` intervals with and without jitter, a few one-shots, spread over time zones with and
without DST. Then it times, all from one fixed instant (no clock is read for fire times):

1. parse_config on the generated YAML (YAML parse + validation + timelines);
2. the next fire of every schedule;
3. ten successive fires each for a subset.

Run from the repository root: `python bench/bench_nextfire.py [--count N]`. Not a test.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import random
import resource
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from scheduler.core.config import parse_config
from scheduler.core.schedule import Config

# Wednesday 2026-01-07 12:00:00 UTC.
NOW = int(datetime(2026, 1, 7, 12, tzinfo=timezone.utc).timestamp())

ZONES = [
    "UTC",
    "UTC",
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Dublin",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/Santiago",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Asia/Singapore",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
]
EVERY = ["30s", "1m", "90s", "5m", "10m", "15m", "30m", "1h", "2h", "6h", "12h", "1d"]


def cron_expression(rng: random.Random) -> str:
    """One cron expression of a kind people write; the random fields make most distinct."""
    minute, hour, second = rng.randrange(60), rng.randrange(24), rng.randrange(60)
    kind = rng.choices(
        ["daily", "weekdays", "hours", "step", "monthly", "last", "nth", "seconds", "hashed"],
        weights=[20, 12, 10, 10, 6, 3, 3, 6, 30],
    )[0]
    if kind == "daily":
        return f"{minute} {hour} * * *"
    if kind == "weekdays":
        return f"{minute} {hour} * * 1-5"
    if kind == "hours":
        first = rng.randrange(12)
        return f"{minute} {first}-{first + rng.randrange(1, 12)} * * *"
    if kind == "step":
        return rng.choice(
            [
                f"*/{rng.choice([2, 5, 10, 15, 20, 30])} * * * *",
                f"{minute} */{rng.choice([2, 3, 4, 6, 8, 12])} * * *",
            ]
        )
    if kind == "monthly":
        return f"{minute} {hour} {rng.randrange(1, 29)} * *"
    if kind == "last":
        return f"{minute} {hour} L * *"
    if kind == "nth":
        return f"{minute} {hour} * * {rng.randrange(7)}#{rng.randrange(1, 5)}"
    if kind == "seconds":
        return rng.choice(
            [
                f"*/{rng.choice([5, 10, 15, 30])} * * * * *",
                f"{second} {minute} * * * *",
                f"{second} {minute} {hour} * * *",
            ]
        )
    return rng.choice(
        [
            "H * * * *",
            "H H * * *",
            "H/15 * * * *",
            "H H(0-5) * * 1-5",
            "H H * * H",
            f"H {hour} * * *",
        ]
    )


def build_yaml(count: int, seed: int) -> tuple[str, Counter[str]]:
    rng = random.Random(seed)
    kinds: Counter[str] = Counter()
    lines = ["defaults:", "  catchup: all", "  catchup_window: 1h", "schedules:"]
    for number in range(count):
        name = f"job-{number:06d}"
        lines.append(f"  {name}:")
        roll = rng.random()
        if roll < 0.70:
            kinds["cron"] += 1
            lines.append(f'    cron: "{cron_expression(rng)}"')
        elif roll < 0.97:
            kinds["every"] += 1
            every = rng.choice(EVERY)
            lines.append(f"    every: {every}")
            if every not in ("30s", "1m", "90s") and rng.random() < 0.3:
                lines.append("    jitter: 20s")
        else:
            kinds["at"] += 1
            when = datetime.fromtimestamp(NOW, timezone.utc) + timedelta(
                seconds=rng.randrange(-30 * 86400, 365 * 86400)
            )
            lines.append(f"    at: {when.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        lines.append(f"    timezone: {rng.choice(ZONES)}")
        lines.append(f"    job: tasks.t{number % 500}")
        if rng.random() < 0.2:
            lines.append(f"    args: {{tenant: t{number % 97}, retries: {number % 4}}}")
        if rng.random() < 0.1:
            lines.append(f"    queue: q{number % 8}")
    return "\n".join(lines) + "\n", kinds


def timed(what: str, seconds: float, per: int | None = None, unit: str = "schedule") -> None:
    line = f"{what:<44} {seconds:9.3f} s"
    if per:
        line += f"   {seconds / per * 1e6:9.1f} µs per {unit}"
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="schedules (default 100000)")
    parser.add_argument("--subset", type=int, default=10_000, help="schedules walked 10 fires")
    parser.add_argument("--seed", type=int, default=20260107)
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")

    print(
        f"cronlease bench_nextfire: {args.count:,} schedules, Python "
        f"{platform.python_version()}, cronlease {importlib.metadata.version('cronlease')}"
    )
    started = time.perf_counter()
    text, kinds = build_yaml(args.count, args.seed)
    timed("generate YAML (not part of the product)", time.perf_counter() - started)
    mix = ", ".join(f"{kinds[k]:,} {k}" for k in ("cron", "every", "at"))
    print(f"  {len(text) / 1e6:.1f} MB, {text.count(chr(10)):,} lines; {mix}")

    started = time.perf_counter()
    config: Config = parse_config(text, "bench.yaml")
    parse_s = time.perf_counter() - started
    timed("parse + validate (parse_config)", parse_s, args.count)
    distinct = len({s.spec for s in config.schedules if s.kind == "cron"})
    print(f"  {distinct:,} distinct cron expressions as written (H differs per name)")

    per_kind: dict[str, list[float]] = {"cron": [], "every": [], "at": []}
    fired = 0
    started = time.perf_counter()
    for schedule in config.schedules:
        t0 = time.perf_counter()
        fire = schedule.timeline.next_after(NOW)
        per_kind[schedule.kind].append(time.perf_counter() - t0)
        fired += fire is not None
    all_s = time.perf_counter() - started
    timed("next fire of every schedule", all_s, args.count)
    for kind, samples in per_kind.items():
        if samples:
            samples.sort()
            print(
                f"  {kind:<6} {len(samples):>7,}: mean {sum(samples) / len(samples) * 1e6:7.1f} µs,"
                f" median {samples[len(samples) // 2] * 1e6:7.1f} µs,"
                f" p99 {samples[int(len(samples) * 0.99)] * 1e6:7.1f} µs"
            )
    print(f"  {fired:,} schedules have a next fire ({args.count - fired:,} one-shots are over)")

    subset = config.schedules[: min(args.subset, args.count)]
    started = time.perf_counter()
    fires = sum(len(s.timeline.upcoming(NOW, 10)) for s in subset)
    walk_s = time.perf_counter() - started
    timed(f"10 successive fires of {len(subset):,} schedules", walk_s, fires, unit="fire")

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
