"""How the daemon's figures grow with the number of schedules N: a table, and a PNG plot.

    python bench/bench_growth.py                          # N = 1,000 / 10,000 / 100,000 (~3 min)
    python bench/bench_growth.py --sizes 100,1000 --plot /tmp/growth.png
    python bench/bench_growth.py --instants 10 --every 10 --json

For each N, two scenarios, each with its own redis-server and a real daemon process, built from
bench_scale.py's functions (imported, so each figure means what it means there: see its
docstring and bench/README.md):

- startup: bench_scale's own scenario, N schedules of its realistic mix (one `every: 1s`, so
  the first run comes at the first whole second after the daemon leads): process start ->
  first run written (wall clock) and the daemon's CPU until then; VmRSS 2 s after the first
  run, and VmHWM;
- instants: N schedules `every: <--every>s`, so all N fire together every --every seconds (a
  load that grows with N and that one daemon can still write at 100,000, which `every: 1s`
  would not be). After one warm-up instant, --instants instants are measured: the daemon's
  CPU per 1,000 fires over those whole cycles (from the warm-up instant's last run to the last
  instant's: the daemon plans an instant ahead of its second, so CPU around the instants alone
  would miss most of it; idle costs are in, and /proc counts in 10 ms ticks: at small N more
  instants give a finer figure); lag p99 (enqueued_at - fire time) and write lag p99 (Redis
  entry id - fire time) over all their runs.

It prints one row per N, then how each figure grew from one N to the next (the factor per x10
of N: 1.0 is flat, 10 is linear), and draws the four main figures against N, log-log, beside
their targets (the issue's: first run < 10 s and VmRSS <= 150 MB at 100,000; <= 0.05 s CPU per
1,000 fires; lag p99 <= 50 ms) into --plot. The plot needs matplotlib, from the `bench` extra:
`pip install -e '.[bench]'`; without it the table is still printed and the bench says so.

Exit status: 0 every scenario finished, 2 one did not (timed out, a daemon died).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bench_scale
from bench_scale import (
    CPU_PER_1K_S,
    LAG_P99_MS,
    RSS_MB,
    STARTUP_S,
    Context,
    Progress,
    Result,
    add_cpu,
    add_lags,
    queue_keys,
    read_all,
    redis_version,
    render_machine,
    run_one,
    running,
    stop_daemon,
    wait_leading,
    write_config,
)
from bench_scale import parse_args as scale_args
from benchkit import RedisProcess, exit_on_sigterm, table
from scalekit import (
    WindowTally,
    machine,
    raw_client,
    redis_cpu_seconds,
    schedule_name,
    sleep_until,
    stream_lengths,
    uniform_yaml,
    wait_for,
)

# One N's figures, by bench_scale's keys, with "size", "status" and "notes".
Row = dict[str, Any]

SIZES = (1_000, 10_000, 100_000)
SAMPLE_EARLY_S = 0.2  # the streams' length is taken this long before each instant
INSTALL_HINT = "pip install -e '.[bench]'  (or: pip install matplotlib)"

# (key, column title, unit, target, scenario it comes from); the first four are plotted.
FIGURES = (
    ("first_run_s", "start-up to first run", "s", STARTUP_S, "startup"),
    ("rss_mb", "VmRSS", "MB", RSS_MB, "startup"),
    ("cpu_per_1k_s", "CPU per 1,000 fires", "s", CPU_PER_1K_S, "instants"),
    ("lag_p99_ms", "lag p99", "ms", LAG_P99_MS, "instants"),
    ("startup_cpu_s", "CPU to first run", "s", None, "startup"),
    ("config_loaded_s", "config loaded", "s", None, "startup"),
    ("hwm_mb", "VmHWM", "MB", None, "startup"),
    ("write_lag_p99_ms", "write lag p99", "ms", None, "instants"),
)


def instants(ctx: Context, result: Result) -> None:
    """N schedules that all fire every `--every` seconds; `--instants` instants measured."""
    size, every, count = result.size, ctx.args.every, ctx.args.instants
    result.params.update(trigger=f"every: {every}s", instants=count, queues=ctx.args.queues)
    folder = ctx.scenario_folder(f"instants-{size}")
    names = [schedule_name("g", i) for i in range(size)]
    config = write_config(folder, uniform_yaml("g", size, f"every: {every}s", ctx.args.queues))
    streams = queue_keys(size, ctx.args.queues)
    with RedisProcess(ctx.args.aof) as server, contextlib.closing(raw_client(server.url)) as client:
        daemon = ctx.daemon(folder, config, server.url, "instants")
        with running(daemon):
            ctx.progress(f"instants {size:,}: daemon started, loading {size:,} schedules")
            wait_leading(ctx, result, daemon, size)
            # A warm-up instant first: CPU is counted from its last run to the last run of the
            # last instant, whole cycles (the daemon plans an instant ahead of its second).
            warmup = (math.floor((time.time() + 1.0) / every) + 1) * every
            first, last = warmup + every, warmup + count * every
            ctx.progress(f"instants {size:,}: leading; measuring {count} instants from {first}")

            def written(fire: int) -> None:
                """Until the instant's N runs are in the streams."""
                sleep_until(fire - SAMPLE_EARLY_S, [daemon])
                before = stream_lengths(client, streams)
                wait_for(
                    lambda: stream_lengths(client, streams) >= before + size,
                    ctx.args.burst_timeout,
                    f"all {size:,} runs of the instant {fire} (--burst-timeout)",
                    [daemon],
                    0.01,
                )

            written(warmup)
            cpu0, redis0 = daemon.cpu_s(), redis_cpu_seconds(client)
            for fire in range(first, last + 1, every):
                written(fire)
            daemon_s, redis_s = daemon.cpu_s() - cpu0, redis_cpu_seconds(client) - redis0
            stop_daemon(result, daemon)
        ctx.progress(f"instants {size:,}: reading the streams back")
        tally = WindowTally(names, first, last)
        tally.add(read_all(client, streams))
    result.add("delivered", "runs of the measured instants", tally.in_window)
    add_lags(result, tally)
    add_cpu(result, daemon_s, redis_s, tally.in_window)


# run_one (bench_scale's: statuses, timeouts, errors) runs scenarios by name.
bench_scale.RUNNERS.setdefault("instants", instants)


def measure(scale: argparse.Namespace, size: int, folder: Path, progress: Progress) -> Row:
    """Both scenarios at one N: their figures, and each scenario's status."""
    _, sizes = scale_args(["--quiet"])
    sizes = dataclasses.replace(sizes, startup=size)
    ctx = Context(scale, sizes, folder, progress)
    row: Row = {"size": size, "status": {}, "notes": []}
    for name in ("startup", "instants"):
        result = Result(name, size)
        run_one(ctx, result)
        row["status"][name] = result.status if result.message is None else result.message
        wanted = {key for key, *_, source in FIGURES if source == name}
        row.update({figure.key: figure.value for figure in result.rows if figure.key in wanted})
        row["notes"] += [f"{result.title}: {note}" for note in result.notes]
    return row


def value_text(value: Any, unit: str) -> str:
    if not isinstance(value, int | float):
        return "n/a"
    digits = {"s": 3, "MB": 1, "ms": 1}[unit]
    return f"{value:,.{digits + (1 if unit == 's' and value < 0.1 else 0)}f}"


def growth(rows: Sequence[Row], key: str) -> str:
    """How the figure grew per x10 of N, between each pair of neighbouring sizes."""
    steps = []
    for low, high in itertools.pairwise(rows):
        a, b = low.get(key), high.get(key)
        if not isinstance(a, int | float) or not isinstance(b, int | float) or a <= 0 or b <= 0:
            steps.append("n/a")
            continue
        decades = math.log10(high["size"] / low["size"])
        steps.append(f"x{(b / a) ** (1 / decades):.2f}" if decades > 0 else "n/a")
    return ", ".join(steps)


def render(rows: Sequence[Row], every: int) -> str:
    header = ["schedules", *(f"{title} ({unit})" for _, title, unit, *_ in FIGURES)]
    body = [
        [f"{row['size']:,}", *(value_text(row.get(key), unit) for key, _, unit, *_ in FIGURES)]
        for row in rows
    ]
    targets = ["target"] + [
        "" if target is None else f"{'<' if key == 'first_run_s' else '<='} {target:g}"
        for key, _, _, target, _ in FIGURES
    ]
    lines = [table(header, [*body, targets])]
    lines.append(
        f"\nCPU per 1,000 fires and lags: instants of N fires together (every: {every}s)."
        "\nGrowth per x10 of N, from each size to the next (1.0 flat, 10 linear):"
    )
    lines += [f"  {title}: {growth(rows, key)}" for key, title, *_ in FIGURES]
    for row in rows:
        failed = {name: status for name, status in row["status"].items() if status != "ok"}
        if failed:
            lines.append(f"{row['size']:,}: did not finish: {failed}")
        lines += [f"note: {note}" for note in row["notes"]]
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: Path, title: str) -> None:
    """The four main figures against N, log-log, each beside its target."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    figure, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    sizes = [row["size"] for row in rows]
    for axis, (key, name, unit, target, source) in zip(axes.flat, FIGURES[:4], strict=True):
        points = [(row["size"], row.get(key)) for row in rows]
        points = [(n, v) for n, v in points if isinstance(v, int | float) and v > 0]
        if points:
            axis.plot(*zip(*points, strict=True), marker="o", linewidth=2, label="measured")
            for n, v in points:
                axis.annotate(
                    value_text(v, unit),
                    (n, v),
                    textcoords="offset points",
                    xytext=(0, 8),
                    ha="center",
                    fontsize=9,
                )
        if target is not None:
            axis.axhline(target, color="tab:red", linestyle="--", label=f"target {target:g} {unit}")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(sizes, [f"{n:,}" for n in sizes])
        axis.set_xlim(sizes[0] / 2, sizes[-1] * 2)
        shown = [v for _, v in points] + ([target] if target is not None else [])
        if shown:
            axis.set_ylim(min(shown) / 2.5, max(shown) * 2.5)
        # Plain numbers on the value axis (1, 2, 5 per decade), not powers of ten.
        axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.yaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("schedules (N)")
        axis.set_ylabel(unit)
        axis.set_title(f"{name} ({source})")
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(loc="best", fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def matplotlib_missing() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="comma-separated numbers of schedules (default 1000,10000,100000)",
    )
    parser.add_argument(
        "--every",
        type=int,
        choices=(5, 10, 15, 20, 30, 60),
        default=5,
        help="instants: seconds between two instants, the schedules' every (default 5)",
    )
    parser.add_argument("--instants", type=int, default=6, help="instants measured per N (6)")
    parser.add_argument(
        "--burst-timeout",
        type=float,
        default=120.0,
        help="instants: seconds one instant's runs may take (default 120)",
    )
    parser.add_argument("--plot", default="bench_growth.png", help="the PNG (%(default)s)")
    parser.add_argument("--no-plot", action="store_true", help="print the table only")
    parser.add_argument("--log-dir", help="keep configs and daemon logs in this folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(part.replace("_", "")) for part in args.sizes.split(",")})
    except ValueError:
        parser.error(f"--sizes {args.sizes!r} is not a comma-separated list of numbers")
    if args.sizes[0] < 1 or args.instants < 1:
        parser.error("--sizes and --instants must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)
    draw = not args.no_plot
    if draw and matplotlib_missing():
        print(f"matplotlib is not installed, so no plot: {INSTALL_HINT}", file=sys.stderr)
        draw = False
    # bench_scale's options at their defaults (its Context and scenarios read them), and ours.
    scale, _ = scale_args(["--quiet"] if args.quiet else [])
    scale.every, scale.instants, scale.burst_timeout = args.every, args.instants, args.burst_timeout
    progress = Progress(args.quiet)
    info = machine(redis_version())
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    machine_text = render_machine(info, "no persistence")
    if not args.json:
        print(machine_text, flush=True)
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        if args.log_dir:
            folder = Path(args.log_dir)
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cronlease-g-")))
        for size in args.sizes:
            try:
                rows.append(measure(scale, size, folder / f"n{size}", progress))
            except KeyboardInterrupt:
                print("interrupted; what it started is stopped", file=sys.stderr)
                return 130
    finished = all(status == "ok" for row in rows for status in row["status"].values())
    if draw:
        plot(rows, Path(args.plot), f"cronlease: growth with N, {started_at}\n{machine_text}")
    if args.json:
        figures = {
            "benchmark": "cronlease bench_growth",
            "schema": 1,
            "started_at": started_at,
            "machine": info,
            "every_s": args.every,
            "instants": args.instants,
            "rows": rows,
            "plot": str(args.plot) if draw else None,
        }
        print(json.dumps(figures))
    else:
        print("\n" + render(rows, args.every))
        if draw:
            print(f"\nplot: {args.plot}")
    return 0 if finished else 2


if __name__ == "__main__":
    sys.exit(main())
