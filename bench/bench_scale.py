"""Scale and speed of the real daemon: steady load, bursts, start-up, idle cost, failover.

    python bench/bench_scale.py                     # every scenario, default sizes (~15 min)
    python bench/bench_scale.py --smoke             # every scenario, tiny sizes (~35 s)
    python bench/bench_scale.py --only steady --steady-sizes 10000 --duration 20 --json

Each scenario starts its own redis-server (no persistence unless --aof) and runs the daemon as
real processes (`python -m scheduler run ... --log-format json`), then reads every stream back
(XRANGE pages, bytes, hiredis) and compares what was written with what was due.

- steady: N `every: 1s` schedules (all fire every second). The window starts at the first whole
  second after the daemon leads and its first run is in Redis, and holds `--duration` fire
  seconds [W0, W1]; the daemon gets SIGTERM 1.5 s after W1 (so W1's fires have had 1.5 s), and
  only fires with W0 <= fire_ts <= W1 count: expected = N x duration.
- burst: N schedules with the six-field cron `0 * * * * *` (all fire at second 0 of every
  minute; `--burst-every`/`--burst-trigger` change it); measured on the first boundary after the
  daemon leads: completion = the last run's entry id time minus the fire second.
- startup: N schedules of a realistic mix (every, distinct crons, H-hashed crons, second-level
  crons, time zones, jitter, catch-up policies), one of them `every: 1s`; process start ->
  config loaded, -> leading, -> first run written; VmRSS 2 s after the first run, VmHWM.
- idle: N minute-level schedules (half `every: 1m`, half `* * * * *`): the daemon's CPU as % of
  one core over `--idle-duration` seconds lying between two minutes' fires.
- failover: N `every: 1s` schedules, `--replicas` daemons; the leader is SIGKILLed, then the next
  leader SIGTERMed: leader gap (signal -> the leader key names another replica, polled every
  2 ms), run gap (signal -> first run of the new leader), back on time (signal -> every fire of
  the first second after take-over written); then every fire of the whole window must be in
  the streams exactly once.

Lag is reported twice: `lag` = enqueued_at - fire_time (the daemon's own stamp, taken once per
batch before it is written) and `write lag` = the stream entry id's milliseconds (Redis's clock
at XADD) - fire_time, which is when a worker could first see the run. CPU: utime + stime of the
daemon from /proc/<pid>/stat over the window, per 1,000 fires delivered in it; Redis's CPU
(INFO cpu) likewise, for context.

Exit status: 0 every target met, 1 a target missed, 2 a scenario could not finish (timed out,
a daemon died). With --smoke only the exactly-once checks (nothing missing, nothing twice) and
completion count; the speed targets are shown but not judged.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis
from benchkit import RedisProcess, Timeout, add_aof_flag, exit_on_sigterm, table
from floorkit import Cost, command_stats, floor_of_latest, lua_floor
from scalekit import (
    KEYS,
    DaemonDied,
    DaemonProcess,
    Entry,
    WindowTally,
    fields_of,
    first_entry_ms,
    machine,
    mixed_yaml,
    raw_client,
    read_stream,
    redis_cpu_seconds,
    schedule_name,
    sleep_until,
    stream_lengths,
    stream_page,
    uniform_yaml,
    wait_for,
)

from scheduler.store.redisbin import find_redis_server

SCENARIOS = ("steady", "burst", "startup", "idle", "failover")
STOP_MARGIN_S = 1.5  # SIGTERM this long after the last window second
SAMPLE_EARLY_S = 0.05  # CPU is sampled this long before a window's fire second
STOP_TIMEOUT_S = 60.0
LEADER_POLL_S = 0.002
NO_PERSISTENCE_WARNING = "Redis has no persistence"

# Targets (the issue "Scale and speed").
LAG_P99_MS = 50.0
FLOOR_RATIO = 2.0  # the enqueue script's Redis time per run over a bare XADD's
CPU_PER_1K_S = 0.05
BURST_S = 2.0
IDLE_CPU_PCT = 1.0
RSS_MB = 150.0
STARTUP_S = 10.0
SIGTERM_GAP_S = 0.5


@dataclass(frozen=True)
class Sizes:
    steady: tuple[int, ...] = (1_000, 10_000)
    duration_s: int = 60
    burst: int = 100_000
    burst_every_s: int = 60
    startup: int = 100_000
    idle: int = 1_000
    idle_duration_s: int = 30
    failover: int = 10_000
    replicas: int = 3
    failover_ttl_s: float = 2.0
    failover_settle_s: float = 3.0


SMOKE = Sizes(
    steady=(200,),
    duration_s=3,
    burst=500,
    burst_every_s=5,
    startup=500,
    idle=100,
    idle_duration_s=3,
    failover=200,
    replicas=3,
    failover_ttl_s=1.0,
    failover_settle_s=1.0,
)


# -- results ----------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    label: str
    value: Any = None
    unit: str = ""
    op: str | None = None  # a target: "<=", "<", "=="
    limit: float | None = None
    hard: bool = False  # an exactly-once check: judged in --smoke too

    @property
    def ok(self) -> bool | None:
        if self.op is None or self.limit is None:
            return None
        if not isinstance(self.value, int | float):
            return False
        if self.op == "<=":
            return bool(self.value <= self.limit)
        if self.op == "<":
            return bool(self.value < self.limit)
        return bool(self.value == self.limit)


@dataclass
class Result:
    scenario: str
    size: int
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "running"  # ok | timed out | daemon died | error | interrupted
    message: str | None = None
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def title(self) -> str:
        return f"{self.scenario} {self.size:,}"

    def _row(self, key: str) -> Row | None:
        return next((row for row in self.rows if row.key == key), None)

    def target(
        self, key: str, label: str, op: str, limit: float, unit: str = "", hard: bool = False
    ) -> None:
        """Declare a target before measuring: if the scenario aborts, it shows as not met."""
        self.rows.append(Row(key, label, None, unit, op, limit, hard))

    def add(self, key: str, label: str, value: Any, unit: str = "") -> None:
        row = self._row(key)
        if row is None:
            self.rows.append(Row(key, label, value, unit))
        else:
            row.value = value

    def judged(self, smoke: bool) -> list[Row]:
        return [row for row in self.rows if row.ok is not None and (row.hard or not smoke)]

    def passed(self, smoke: bool) -> bool:
        return self.status == "ok" and all(row.ok for row in self.judged(smoke))

    def as_json(self, smoke: bool) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "size": self.size,
            "params": self.params,
            "status": self.status,
            "message": self.message,
            "seconds": round(self.seconds, 1),
            "figures": {row.key: row.value for row in self.rows},
            "units": {row.key: row.unit for row in self.rows if row.unit},
            "targets": {
                row.key: {"op": row.op, "limit": row.limit, "pass": row.ok, "hard": row.hard}
                for row in self.rows
                if row.op is not None
            },
            "notes": self.notes,
            "pass": self.passed(smoke),
        }


class Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self.started
            print(f"[bench_scale {elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    args: argparse.Namespace
    sizes: Sizes
    folder: Path
    progress: Progress

    def start_timeout(self, schedules: int, replicas: int = 1) -> float:
        if self.args.start_timeout is not None:
            return float(self.args.start_timeout)
        # Today a config loads at ~1 ms per schedule; replicas load side by side.
        return 60.0 + 0.003 * schedules * replicas

    def scenario_folder(self, name: str) -> Path:
        path = self.folder / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def daemon(
        self, folder: Path, config: Path, url: str, replica_id: str, ttl_s: float | None = None
    ) -> DaemonProcess:
        return DaemonProcess(
            replica_id,
            config,
            url,
            folder / f"{replica_id}.log",
            ttl_s=self.args.lease_ttl if ttl_s is None else ttl_s,
            schedule_metrics=self.args.schedule_metrics,
            log_level=self.args.log_level,
        )


@contextlib.contextmanager
def running(*daemons: DaemonProcess) -> Iterator[None]:
    """Start the daemons; kill whatever still runs on the way out, whatever the reason."""
    try:
        for daemon in daemons:
            daemon.start()
        yield
    finally:
        for daemon in daemons:
            daemon.kill()


def queue_keys(schedules: int, queues: int) -> list[str]:
    return [KEYS.queue(f"q{i}") for i in range(min(queues, schedules))]


def write_config(folder: Path, text: str) -> Path:
    path = folder / "schedules.yaml"
    path.write_text(text)
    return path


def wait_leading(ctx: Context, result: Result, daemon: DaemonProcess, schedules: int) -> float:
    """Until the daemon logs `leading`; records load and election times; returns the latter."""
    timeout = ctx.start_timeout(schedules)
    elected = wait_for(
        daemon.elected_at,
        timeout,
        f"the daemon to lead (start-up deadline {timeout:g}s, see --start-timeout)",
        [daemon],
        0.05,
    )
    loaded = daemon.loaded_at()
    if loaded is not None:
        result.add(
            "config_loaded_s",
            "config loaded after (process start ->)",
            round(loaded - daemon.started_wall, 3),
            "s",
        )
    result.add(
        "leading_s",
        "leading after (process start ->)",
        round(elected - daemon.started_wall, 3),
        "s",
    )
    return elected


def wait_first_run(
    ctx: Context, client: redis.Redis, streams: Sequence[str], daemons: Sequence[DaemonProcess]
) -> float:
    """Until a run is in some stream; returns when we saw it (time.time())."""
    wait_for(
        lambda: stream_lengths(client, streams) > 0,
        30.0 + ctx.start_timeout(0),
        "the first run in the streams",
        daemons,
    )
    return time.time()


def stop_daemon(result: Result, daemon: DaemonProcess, key: str = "exit_code") -> None:
    stopping = time.monotonic()
    code = daemon.stop(STOP_TIMEOUT_S)
    result.add(key, "exit status after SIGTERM", "no exit (killed)" if code is None else code)
    result.add("stop_s", "SIGTERM -> exit", round(time.monotonic() - stopping, 3), "s")


def note_complaints(ctx: Context, result: Result, daemons: Sequence[DaemonProcess]) -> None:
    """The daemons' warnings and errors as notes; for a lone daemon, how often it was elected
    (more than once: it lost its lease, with nobody to compete with)."""
    if len(daemons) == 1:
        result.add("elections", "times elected (1: never lost the lease)", elections(daemons))
    ignore = () if ctx.args.aof else (NO_PERSISTENCE_WARNING,)
    for daemon in daemons:
        for message, count in daemon.complaints(ignore).most_common(8):
            result.notes.append(f"{daemon.replica_id} log: {message} (x{count})")


def read_all(client: redis.Redis, streams: Sequence[str]) -> Iterator[Entry]:
    for index, key in enumerate(streams):
        yield from read_stream(client, key, index)


def add_cpu(result: Result, daemon_s: float, redis_s: float, delivered: int) -> None:
    """CPU per 1,000 fires delivered (n/a when nothing was)."""
    per_1k = 1000 / delivered if delivered else None
    result.add(
        "cpu_per_1k_s",
        "daemon CPU per 1,000 fires",
        None if per_1k is None else round(daemon_s * per_1k, 4),
        "s",
    )
    result.add(
        "redis_cpu_per_1k_s",
        "Redis CPU per 1,000 fires",
        None if per_1k is None else round(redis_s * per_1k, 4),
        "s",
    )


def add_floor(
    result: Result,
    script_usec: int,
    redis_cpu_s: float,
    delivered: int,
    floors: tuple[Cost, Cost, Cost],
) -> None:
    """The enqueue script's Redis time per run (cmdstat_evalsha over the window: the leader's
    other scripts, a few calls a second, are in it too) beside the floor, a bare pipelined XADD
    of the same entries on the same server (cmdstat_xadd), and Redis's CPU per run of each;
    then the floor of any script (XADD_FROM_LUA: every value passed in, and redis.call('XADD')
    alone), and the least time Redis needs to write one instant of that many entries."""
    floor, from_lua, call_alone = floors
    script = script_usec / delivered if delivered else None
    result.add("script_us_per_run", "enqueue script, Redis us per run (cmdstat_evalsha)", script)
    result.add(
        "floor_us_per_run",
        f"floor: bare XADD of the same entries, us per run (cmdstat_xadd, {floor.runs:,})",
        floor.redis_us_per_run,
    )
    ratio = script / floor.redis_us_per_run if script and floor.redis_us_per_run else None
    result.add("floor_ratio", "enqueue script / floor (Redis us per run)", ratio)
    result.add(
        "redis_cpu_us_per_run",
        "Redis CPU us per run: window / floor (INFO cpu)",
        None
        if not delivered
        else f"{redis_cpu_s * 1e6 / delivered:.2f} / {floor.cpu_us_per_run:.2f}",
    )
    result.add(
        "lua_floor_us_per_run",
        "floor from Lua: XADD_FROM_LUA, every value passed, us per run (cmdstat_evalsha)",
        from_lua.redis_us_per_run,
    )
    result.add(
        "lua_call_us_per_run",
        "floor from Lua: redis.call('XADD') alone (one entry repeated), us per run",
        call_alone.redis_us_per_run,
    )
    result.add(
        "script_over_lua_floor",
        "enqueue script / floor from Lua, every value passed",
        script / from_lua.redis_us_per_run if script and from_lua.redis_us_per_run else None,
    )
    result.add(
        "floor_instant_ms",
        f"one instant of {floor.runs:,}: Redis busy ms, bare XADD (CPU) / redis.call alone",
        f"{floor.cpu_us_per_run * floor.runs / 1000:.1f} / "
        f"{call_alone.redis_us_per_run * call_alone.runs / 1000:.1f}",
    )


def add_lags(result: Result, tally: WindowTally) -> None:
    lags = tally.lag_figures()
    for name in ("min", "p50", "p99", "max"):
        key = f"lag_{name}_ms"
        result.add(key, f"lag {name} (enqueued_at - fire_time)", lags[key], "ms")
    for name in ("min", "p50", "p99", "max"):
        key = f"write_lag_{name}_ms"
        result.add(key, f"write lag {name} (entry id - fire_time)", lags[key], "ms")
    result.add("early_runs", "runs written before their fire second", tally.early)


# -- scenarios --------------------------------------------------------------------------------


def steady(ctx: Context, result: Result) -> None:
    size, duration = result.size, ctx.sizes.duration_s
    result.params.update(duration_s=duration, queues=ctx.args.queues, trigger="every: 1s")
    result.target("delivered", "delivered in window", "==", size * duration, hard=True)
    result.target("missing", "missing", "==", 0, hard=True)
    result.target("duplicates", "duplicates (same schedule and fire_ts)", "==", 0, hard=True)
    result.target("lag_p99_ms", "lag p99 (enqueued_at - fire_time)", "<=", LAG_P99_MS, "ms")
    result.target(
        "write_lag_p99_ms", "write lag p99 (entry id - fire_time)", "<=", LAG_P99_MS, "ms"
    )
    result.target("cpu_per_1k_s", "daemon CPU per 1,000 fires", "<=", CPU_PER_1K_S, "s")
    result.target("floor_ratio", "enqueue script / floor (Redis us per run)", "<=", FLOOR_RATIO)
    folder = ctx.scenario_folder(f"steady-{size}")
    names = [schedule_name("s", i) for i in range(size)]
    config = write_config(folder, uniform_yaml("s", size, "every: 1s", ctx.args.queues))
    streams = queue_keys(size, ctx.args.queues)
    with RedisProcess(ctx.args.aof) as server, contextlib.closing(raw_client(server.url)) as client:
        daemon = ctx.daemon(folder, config, server.url, "steady")
        with running(daemon):
            ctx.progress(f"steady {size:,}: daemon started, loading {size:,} schedules")
            wait_leading(ctx, result, daemon, size)
            seen = wait_first_run(ctx, client, streams, [daemon])
            first = math.floor(seen + SAMPLE_EARLY_S) + 1 + ctx.args.warmup
            last = first + duration - 1
            result.add("window", "window (fire seconds)", f"{first}..{last} ({duration} s)")
            result.add("expected", "expected (N x seconds)", size * duration)
            ctx.progress(f"steady {size:,}: leading; measuring fire seconds {first}..{last}")
            sleep_until(first - SAMPLE_EARLY_S, [daemon])
            cpu0, redis0 = daemon.cpu_s(), redis_cpu_seconds(client)
            script0 = command_stats(client, "evalsha")
            sleep_until(last + 1 - SAMPLE_EARLY_S, [daemon])
            cpu1, redis1 = daemon.cpu_s(), redis_cpu_seconds(client)
            script1 = command_stats(client, "evalsha")
            memory = daemon.memory_mb()
            sleep_until(last + STOP_MARGIN_S, [daemon])
            stop_daemon(result, daemon)
        ctx.progress(f"steady {size:,}: reading the streams back")
        tally = WindowTally(names, first, last)
        tally.add(read_all(client, streams))
        ctx.progress(f"steady {size:,}: the floor, a bare XADD of the same {size:,} entries")

        def scratch(i: int) -> str:
            return KEYS.queue(f"floor-{i}")

        floor = floor_of_latest(client, streams, size, scratch)
        ctx.progress(f"steady {size:,}: the floor from Lua, the same entries")
        from_lua = floor_of_latest(client, streams, size, scratch, measure=lua_floor)
        call_alone = floor_of_latest(
            client, streams, size, scratch, measure=functools.partial(lua_floor, repeated=True)
        )
    result.add("delivered", "delivered in window", tally.delivered)
    result.add("missing", "missing", tally.missing)
    result.add("duplicates", "duplicates (same schedule and fire_ts)", tally.duplicates)
    add_lags(result, tally)
    add_cpu(result, cpu1 - cpu0, redis1 - redis0, tally.delivered)
    add_floor(
        result,
        script1.usec - script0.usec,
        redis1 - redis0,
        tally.delivered,
        (floor, from_lua, call_alone),
    )
    result.add(
        "cpu_pct", "daemon CPU, % of one core", round((cpu1 - cpu0) / duration * 100, 1), "%"
    )
    result.add("rss_mb", "daemon VmRSS at window end", round(memory["VmRSS"], 1), "MB")
    result.add("hwm_mb", "daemon peak RSS (VmHWM)", round(memory["VmHWM"], 1), "MB")
    result.add("runs_outside_window", "runs outside the window (warm-up, stop)", tally.outside)
    result.add("token_regressions", "fencing token regressions", tally.token_regressions)
    result.add("leaders", "fencing tokens that wrote", len(tally.tokens))
    result.add("catchup_runs", "runs with trigger catchup", tally.triggers.get("catchup", 0))
    if tally.unknown:
        result.notes.append(f"{tally.unknown} runs of schedules not in the config")
    note_complaints(ctx, result, [daemon])


def burst(ctx: Context, result: Result) -> None:
    size, every = result.size, ctx.sizes.burst_every_s
    trigger = burst_trigger(ctx.args.burst_trigger, every)
    result.params.update(trigger=trigger, queues=ctx.args.queues)
    result.target("delivered", "delivered", "==", size, hard=True)
    result.target("duplicates", "duplicates", "==", 0, hard=True)
    result.target(
        "completion_s", "burst completion (last entry id - fire second)", "<=", BURST_S, "s"
    )
    result.target("cpu_per_1k_s", "daemon CPU per 1,000 fires", "<=", CPU_PER_1K_S, "s")
    folder = ctx.scenario_folder(f"burst-{size}")
    names = [schedule_name("b", i) for i in range(size)]
    config = write_config(folder, uniform_yaml("b", size, trigger, ctx.args.queues))
    streams = queue_keys(size, ctx.args.queues)
    with RedisProcess(ctx.args.aof) as server, contextlib.closing(raw_client(server.url)) as client:
        daemon = ctx.daemon(folder, config, server.url, "burst")
        with running(daemon):
            ctx.progress(f"burst {size:,}: daemon started, loading {size:,} schedules")
            wait_leading(ctx, result, daemon, size)
            # The first boundary at least a second away: the daemon is idle until then.
            fire = (math.floor((time.time() + 1.0) / every) + 1) * every
            result.add("fire_second", "burst fire second", fire, "Unix s")
            ctx.progress(f"burst {size:,}: leading; the burst fires in {fire - time.time():.0f}s")
            sleep_until(fire - 0.2, [daemon])
            before = stream_lengths(client, streams)
            cpu0, redis0 = daemon.cpu_s(), redis_cpu_seconds(client)
            deadline = ctx.args.burst_timeout
            try:
                wait_for(
                    lambda: stream_lengths(client, streams) >= before + size,
                    deadline + 0.2,
                    f"all {size:,} runs of the burst (deadline {deadline:g}s, --burst-timeout)",
                    [daemon],
                    0.01,
                )
                timed_out: Timeout | None = None
            except Timeout as error:
                timed_out = error
            cpu1, redis1 = daemon.cpu_s(), redis_cpu_seconds(client)
            memory = daemon.memory_mb()
            stop_daemon(result, daemon)
        ctx.progress(f"burst {size:,}: reading the streams back")
        tally = WindowTally(names, fire, fire)
        tally.add(read_all(client, streams))
    result.add("delivered", "delivered", tally.delivered)
    result.add("duplicates", "duplicates", tally.duplicates)
    if tally.write_lags:
        result.add(
            "first_write_s", "first entry id - fire second", round(min(tally.write_lags), 3), "s"
        )
        result.add(
            "completion_s",
            "burst completion (last entry id - fire second)",
            round(max(tally.write_lags), 3),
            "s",
        )
    add_lags(result, tally)
    add_cpu(result, cpu1 - cpu0, redis1 - redis0, tally.delivered)
    result.add(
        "cpu_s", "daemon CPU from 0.2 s before the fire second on", round(cpu1 - cpu0, 3), "s"
    )
    result.add("runs_outside", "runs of other fire seconds", tally.outside)
    result.add("hwm_mb", "daemon peak RSS (VmHWM)", round(memory["VmHWM"], 1), "MB")
    note_complaints(ctx, result, [daemon])
    if timed_out is not None:
        raise timed_out


def burst_trigger(kind: str, every: int) -> str:
    if kind == "every":
        return f"every: {every}s"
    if every == 60:
        return 'cron: "0 * * * * *"'
    return f'cron: "*/{every} * * * * *"'


def startup(ctx: Context, result: Result) -> None:
    size = result.size
    result.params.update(mix="every / cron / H-hashed / six-field, 1 in 5 with a time zone")
    result.target("first_run_s", "first run written after (process start ->)", "<", STARTUP_S, "s")
    result.target("rss_mb", "daemon VmRSS 2 s after the first run", "<=", RSS_MB, "MB")
    folder = ctx.scenario_folder(f"startup-{size}")
    config = write_config(folder, mixed_yaml("m", size, ctx.args.queues))
    streams = queue_keys(size, ctx.args.queues)
    with RedisProcess(ctx.args.aof) as server, contextlib.closing(raw_client(server.url)) as client:
        daemon = ctx.daemon(folder, config, server.url, "startup")
        with running(daemon):
            ctx.progress(f"startup {size:,}: daemon started, loading {size:,} schedules")
            wait_leading(ctx, result, daemon, size)
            wait_first_run(ctx, client, streams, [daemon])
            first_ms = first_entry_ms(client, streams)
            assert first_ms is not None
            result.add(
                "first_run_s",
                "first run written after (process start ->)",
                round(first_ms / 1000 - daemon.started_wall, 3),
                "s",
            )
            result.add("startup_cpu_s", "daemon CPU until then", round(daemon.cpu_s(), 2), "s")
            sleep_until(time.time() + 2.0, [daemon])
            memory = daemon.memory_mb()
            result.add(
                "rss_mb", "daemon VmRSS 2 s after the first run", round(memory["VmRSS"], 1), "MB"
            )
            result.add("hwm_mb", "daemon peak RSS (VmHWM)", round(memory["VmHWM"], 1), "MB")
            stop_daemon(result, daemon)
    note_complaints(ctx, result, [daemon])


def idle(ctx: Context, result: Result) -> None:
    size, duration = result.size, ctx.sizes.idle_duration_s
    result.params.update(duration_s=duration, mix="half every: 1m, half cron * * * * *")
    result.target("cpu_pct", "daemon CPU between fires, % of one core", "<", IDLE_CPU_PCT, "%")
    folder = ctx.scenario_folder(f"idle-{size}")
    lines = uniform_yaml("i", size, "every: 1m", ctx.args.queues).splitlines()
    for i in range(1, size, 2):  # the odd ones become crons
        lines[1 + 5 * i + 1] = '    cron: "* * * * *"'
    config = write_config(folder, "\n".join(lines) + "\n")
    streams = queue_keys(size, ctx.args.queues)
    with RedisProcess(ctx.args.aof) as server, contextlib.closing(raw_client(server.url)) as client:
        daemon = ctx.daemon(folder, config, server.url, "idle")
        with running(daemon):
            ctx.progress(f"idle {size:,}: daemon started, loading {size:,} schedules")
            wait_leading(ctx, result, daemon, size)
            start = quiet_window(time.time() + 1.0, duration)
            result.add(
                "window", "window (wall seconds)", f"{start}..{start + duration} ({duration} s)"
            )
            ctx.progress(
                f"idle {size:,}: leading; measuring from {start} ({start - time.time():.0f}s)"
            )
            sleep_until(start, [daemon])
            cpu0, redis0, wall0 = daemon.cpu_s(), redis_cpu_seconds(client), time.time()
            switches0, runs0 = context_switches(daemon.pid), stream_lengths(client, streams)
            sleep_until(start + duration, [daemon])
            cpu1, redis1, wall1 = daemon.cpu_s(), redis_cpu_seconds(client), time.time()
            switches1, runs1 = context_switches(daemon.pid), stream_lengths(client, streams)
            memory = daemon.memory_mb()
            stop_daemon(result, daemon)
    wall = wall1 - wall0
    result.add(
        "cpu_pct",
        "daemon CPU between fires, % of one core",
        round((cpu1 - cpu0) / wall * 100, 3),
        "%",
    )
    result.add("cpu_s", "daemon CPU in the window", round(cpu1 - cpu0, 3), "s")
    result.add(
        "wakeups_per_s",
        "daemon context switches per second (all threads)",
        round((switches1 - switches0) / wall, 1),
    )
    result.add(
        "redis_cpu_pct", "Redis CPU, % of one core", round((redis1 - redis0) / wall * 100, 3), "%"
    )
    result.add("runs_in_window", "runs written in the window", runs1 - runs0)
    result.add("rss_mb", "daemon VmRSS", round(memory["VmRSS"], 1), "MB")
    note_complaints(ctx, result, [daemon])


def quiet_window(earliest: float, duration: int) -> int:
    """The first whole second from `earliest` on that starts a window of `duration` seconds
    holding no minute boundary, with 2 s of margin on either side (every fire is at :00)."""
    start = math.ceil(earliest)
    if duration > 56:
        return start  # cannot avoid the boundary; the runs in the window are reported
    while not (start % 60 >= 2 and start % 60 + duration <= 58):
        start += 1
    return start


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of a process."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split(":")[1])
    return total


@dataclass
class Failover:
    kind: str
    victim: str
    victim_token: int
    signal_wall: float
    leader_wall: float | None = None
    successor: str | None = None
    successor_token: int | None = None
    exit_code: int | None = None


def elections(daemons: Sequence[DaemonProcess]) -> int:
    """How many times any of them logged `leading` so far."""
    return sum(
        sum(event.get("event") == "elected" for event in daemon.read_events()) for daemon in daemons
    )


def leader_of(client: redis.Redis) -> tuple[int, str] | None:
    value = client.get(KEYS.leader)
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    token, replica = text.split(":", 1)
    return int(token), replica


def failover(ctx: Context, result: Result) -> None:
    size, replicas, ttl = result.size, ctx.sizes.replicas, ctx.sizes.failover_ttl_s
    result.params.update(
        replicas=replicas, lease_ttl_s=ttl, queues=ctx.args.queues, trigger="every: 1s"
    )
    result.target("sigkill_leader_gap_s", "SIGKILL: leader gap", "<=", ttl + 1.0, "s")
    result.target("sigterm_leader_gap_s", "SIGTERM: leader gap", "<=", SIGTERM_GAP_S, "s")
    result.target("missing", "missing (whole window)", "==", 0, hard=True)
    result.target("duplicates", "duplicates (whole stream)", "==", 0, hard=True)
    result.target("token_regressions", "fencing token regressions", "==", 0, hard=True)
    folder = ctx.scenario_folder(f"failover-{size}")
    names = [schedule_name("f", i) for i in range(size)]
    config = write_config(folder, uniform_yaml("f", size, "every: 1s", ctx.args.queues))
    streams = queue_keys(size, ctx.args.queues)
    phases = random.Random(ctx.args.seed)
    events: list[Failover] = []
    with RedisProcess(ctx.args.aof) as server, contextlib.closing(raw_client(server.url)) as client:
        daemons = {
            f"r{i}": ctx.daemon(folder, config, server.url, f"r{i}", ttl)
            for i in range(1, replicas + 1)
        }
        group = list(daemons.values())
        with running(*group):
            ctx.progress(
                f"failover {size:,}: {replicas} replicas started, loading {size:,} schedules each"
            )
            timeout = ctx.start_timeout(size, replicas)
            # Every replica has loaded its config (a follower that is still parsing could not
            # take over), and one leads and writes.
            wait_for(
                lambda: all(d.loaded_at() for d in group) and any(d.elected_at() for d in group),
                timeout,
                f"all replicas up and a leader (start-up deadline {timeout:g}s, --start-timeout)",
                group,
                0.05,
            )
            seen = wait_first_run(ctx, client, streams, group)
            first = math.floor(seen + SAMPLE_EARLY_S) + 1
            elections_before = elections(group)
            sleep_until(first + ctx.sizes.failover_settle_s, group)
            for kind, signum in (("SIGKILL", signal.SIGKILL), ("SIGTERM", signal.SIGTERM)):
                alive = [d for d in group if d.alive()]
                event = fail_leader(ctx, client, streams, daemons, alive, kind, signum, phases, ttl)
                events.append(event)
                ctx.progress(f"failover {size:,}: {describe(event)}")
            last = math.floor(time.time()) + 1
            sleep_until(last + STOP_MARGIN_S, [d for d in group if d.alive()])
            stopping = [d for d in group if d.alive()]
            for daemon in stopping:
                daemon.signal(signal.SIGTERM)
            for daemon in stopping:
                daemon.stop(STOP_TIMEOUT_S)
        ctx.progress(f"failover {size:,}: reading the streams back")
        entries = list(read_all(client, streams))
    tally = WindowTally(names, first, last)
    tally.add(entries)
    result.add("window", "window (fire seconds)", f"{first}..{last} ({last - first + 1} s)")
    result.add("expected", "expected in window", tally.expected)
    for event in events:
        prefix, label = event.kind.lower(), event.kind
        measured = measure_failover(event, entries, size)
        result.add(f"{prefix}_leader_gap_s", f"{label}: leader gap", measured["leader_gap_s"], "s")
        result.add(
            f"{prefix}_run_gap_s",
            f"{label}: run gap (signal -> new leader's first run)",
            measured["run_gap_s"],
            "s",
        )
        result.add(
            f"{prefix}_silence_s",
            f"{label}: streams silent (last run before -> first after)",
            measured["silence_s"],
            "s",
        )
        result.add(
            f"{prefix}_on_time_s",
            f"{label}: back on time (all fires of the take-over second in)",
            measured["on_time_s"],
            "s",
        )
        result.add(
            f"{prefix}_catchup_runs",
            f"{label}: catch-up runs by the new leader",
            measured["catchup_runs"],
        )
        if event.kind == "SIGTERM":
            result.add(
                "sigterm_exit_code", "SIGTERM: the old leader's exit status", event.exit_code
            )
    result.add("missing", "missing (whole window)", tally.missing)
    result.add("duplicates", "duplicates (whole stream)", tally.duplicates)
    result.add("token_regressions", "fencing token regressions", tally.token_regressions)
    result.add("leaders", "fencing tokens that wrote", len(tally.tokens))
    result.add(
        "unplanned_elections_before",
        "leader changes before the window (start-up)",
        elections_before - 1,
    )
    result.add(
        "unplanned_elections",
        "leader changes in the window not caused by a signal",
        elections(group) - elections_before - len(events),
    )
    result.add("runs", "runs in the streams", len(entries))
    add_lags(result, tally)
    result.params["events"] = [
        {
            "kind": e.kind,
            "victim": e.victim,
            "victim_token": e.victim_token,
            "successor": e.successor,
            "successor_token": e.successor_token,
            "signal_wall": round(e.signal_wall, 3),
        }
        for e in events
    ]
    note_complaints(ctx, result, group)


def fail_leader(
    ctx: Context,
    client: redis.Redis,
    streams: Sequence[str],
    daemons: dict[str, DaemonProcess],
    alive: Sequence[DaemonProcess],
    kind: str,
    signum: int,
    phases: random.Random,
    ttl: float,
) -> Failover:
    """Signal the current leader at a random point of a second; wait until runs are on time."""
    holder = wait_for(lambda: leader_of(client), 10 * ttl, "a lease holder", alive)
    victim = daemons[holder[1]]
    sleep_until(math.floor(time.time()) + 1 + phases.uniform(0, 1), alive)
    event = Failover(kind, holder[1], holder[0], time.time())
    victim.signal(signum)
    others = [d for d in alive if d is not victim]

    def successor() -> tuple[int, str] | None:
        found = leader_of(client)
        return found if found is not None and found[1] != victim.replica_id else None

    new = wait_for(
        successor, ttl + 30.0, f"a leader other than {victim.replica_id}", others, LEADER_POLL_S
    )
    event.leader_wall = time.time()
    event.successor_token, event.successor = new
    if kind == "SIGTERM":
        event.exit_code = victim.wait_exit(STOP_TIMEOUT_S)
    victim.kill()
    # On time again: every stream's newest run is the new leader's, for the second after the
    # take-over second (the exact figures come from the full read-back afterwards).
    on_time_from = math.ceil(event.leader_wall) + 1

    def on_time() -> bool:
        for key in streams:
            page = stream_page(client, key, b"+", b"-", 1, reverse=True)
            if not page:
                return False
            fields = fields_of(page[0][1])
            if int(fields[b"token"]) != new[0] or int(fields[b"fire_ts"]) < on_time_from:
                return False
        return True

    wait_for(on_time, 60.0 + ttl, f"{event.successor}'s runs to be on time", others, 0.05)
    return event


def measure_failover(event: Failover, entries: Sequence[Entry], size: int) -> dict[str, Any]:
    assert event.leader_wall is not None
    signal_ms = event.signal_wall * 1000
    before = [e.ms for e in entries if e.ms < signal_ms]
    new = [e for e in entries if e.token == event.successor_token]
    take_over_second = math.ceil(event.leader_wall)
    on_time = [e.ms for e in entries if e.fire_ts == take_over_second]
    first_new = min((e.ms for e in new), default=None)
    return {
        "leader_gap_s": round(event.leader_wall - event.signal_wall, 3),
        "run_gap_s": None if first_new is None else round(first_new / 1000 - event.signal_wall, 3),
        "silence_s": (
            None if first_new is None or not before else round((first_new - max(before)) / 1000, 3)
        ),
        "on_time_s": (
            round(max(on_time) / 1000 - event.signal_wall, 3) if len(on_time) >= size else None
        ),
        "catchup_runs": sum(e.trigger == b"catchup" for e in new),
    }


def describe(event: Failover) -> str:
    gap = "-" if event.leader_wall is None else f"{event.leader_wall - event.signal_wall:.3f}s"
    text = (
        f"{event.kind} {event.victim} (token {event.victim_token}) -> "
        f"{event.successor} (token {event.successor_token}) after {gap}"
    )
    return text if event.exit_code is None else f"{text}, exit status {event.exit_code}"


# -- running and reporting --------------------------------------------------------------------

RUNNERS: dict[str, Callable[[Context, Result], None]] = {
    "steady": steady,
    "burst": burst,
    "startup": startup,
    "idle": idle,
    "failover": failover,
}


def plan(args: argparse.Namespace, sizes: Sizes) -> list[Result]:
    results: list[Result] = []
    for name in args.only:
        if name == "steady":
            results += [Result("steady", size) for size in sizes.steady]
        else:
            results.append(Result(name, getattr(sizes, name)))
    return results


def run_one(ctx: Context, result: Result) -> None:
    started = time.monotonic()
    ctx.progress(f"{result.title}: starting")
    try:
        RUNNERS[result.scenario](ctx, result)
        result.status = "ok"
    except Timeout as error:
        result.status, result.message = "timed out", str(error)
    except DaemonDied as error:
        result.status, result.message = "daemon died", str(error)
    except (redis.RedisError, OSError, RuntimeError, KeyError, ValueError) as error:
        result.status, result.message = "error", f"{type(error).__name__}: {error}"
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (see exit_on_sigterm)
        result.status, result.message = "interrupted", "interrupted"
        raise
    finally:
        result.seconds = time.monotonic() - started
        ctx.progress(f"{result.title}: {result.status} after {result.seconds:.0f}s")


def redis_version() -> str:
    try:
        text = subprocess.run(
            [find_redis_server(), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError, RuntimeError):
        return "unknown"
    match = re.search(r"v=(\S+)", text)
    return match.group(1) if match else text.strip() or "unknown"


def value_text(row: Row) -> str:
    value = row.value
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value) if row.unit == "Unix s" else f"{value:,}"
    digits = {"ms": 1, "MB": 1, "%": 2}.get(row.unit, 3)
    if row.key.endswith("_us_per_run") or row.key == "floor_ratio":
        digits = 2
    if row.key.endswith("per_1k_s"):
        digits = 4
    return f"{value:,.{digits}f}"


def target_text(row: Row) -> str:
    if row.op is None or row.limit is None:
        return ""
    limit = f"{row.limit:,.0f}" if float(row.limit).is_integer() else f"{row.limit:g}"
    return f"{row.op} {limit}"


def result_text(row: Row, smoke: bool) -> str:
    if row.ok is None:
        return ""
    verdict = "pass" if row.ok else "FAIL"
    return verdict if row.hard or not smoke else f"({verdict.lower()})"


def render_machine(info: dict[str, Any], persistence: str) -> str:
    return (
        f"machine: {info['cpu_model']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['memory_gb']} GB, Linux {info['kernel']}\n"
        f"software: {info['python']}, Redis {info['redis_version']} ({persistence}), "
        f"redis-py {info['redis_py']} (hiredis {info['hiredis'] or 'absent'}), "
        f"cronlease {info['cronlease']} at {info['git'] or 'unknown revision'}"
    )


def render_result(result: Result, smoke: bool) -> str:
    params = ", ".join(f"{k} {v}" for k, v in result.params.items() if k != "events")
    status = "" if result.status == "ok" else f" -- {result.status.upper()}"
    lines = [f"== {result.title} ({params}) in {result.seconds:.0f}s{status}"]
    rows = [
        (row.label, value_text(row), row.unit, target_text(row), result_text(row, smoke))
        for row in result.rows
    ]
    lines.append(table(("figure", "value", "unit", "target", "result"), rows))
    if result.message:
        lines.append(f"{result.status}: {result.message}")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def exit_status(results: Sequence[Result], smoke: bool) -> int:
    if any(result.status != "ok" for result in results):
        return 2
    return 0 if all(result.passed(smoke) for result in results) else 1


def run(args: argparse.Namespace, sizes: Sizes) -> int:
    progress = Progress(args.quiet)
    persistence = f"AOF, appendfsync {args.aof}" if args.aof else "no persistence"
    info = machine(redis_version())
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if not args.json:
        print(render_machine(info, persistence), flush=True)
        if args.smoke:
            print("--smoke: tiny sizes; speed targets are shown in (brackets), not judged")
    results = plan(args, sizes)
    with contextlib.ExitStack() as stack:
        if args.log_dir:
            folder = Path(args.log_dir)
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="cronlease-scale-"))
            )
        ctx = Context(args, sizes, folder, progress)
        for result in results:
            try:
                run_one(ctx, result)
            except KeyboardInterrupt:
                print(
                    "interrupted; the redis-servers and daemons it started are stopped",
                    file=sys.stderr,
                )
                return 130
            if not args.json:
                print("\n" + render_result(result, args.smoke), flush=True)
    status = exit_status(results, args.smoke)
    if args.json:
        figures = {
            "benchmark": "cronlease bench_scale",
            "schema": 1,
            "started_at": started_at,
            "smoke": args.smoke,
            "machine": info,
            "persistence": persistence,
            "settings": {
                "queues": args.queues,
                "lease_ttl_s": args.lease_ttl,
                "schedule_metrics": args.schedule_metrics,
                "warmup_s": args.warmup,
                "sizes": sizes.__dict__,
            },
            "scenarios": [result.as_json(args.smoke) for result in results],
            "pass": status == 0,
            "exit_status": status,
        }
        print(json.dumps(figures))
    else:
        verdict = {
            0: "PASS",
            1: "FAIL (a target was missed)",
            2: "INCOMPLETE (a scenario did not finish)",
        }
        print(f"\noverall: {verdict[status]}")
    return status


# -- command line -----------------------------------------------------------------------------


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return values


def positive_int(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def seconds(text: str) -> float:
    value = float(text.removesuffix("s"))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def scenario_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"pick from {', '.join(SCENARIOS)}; not {unknown}")
    return names


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n", 1)[0],
        epilog="Sizes default to the issue's (steady 1,000 and 10,000; 100,000 for the others; "
        "idle 1,000; failover 10,000); with --smoke to tiny ones. An explicit size flag wins.",
    )
    parser.add_argument(
        "--only",
        type=scenario_list,
        default=SCENARIOS,
        help=f"comma-separated scenarios: {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, a few seconds each; only exactly-once checks judged",
    )
    parser.add_argument(
        "--steady-sizes", type=int_list, help="schedules per steady run, e.g. 1000,10000,100000"
    )
    parser.add_argument(
        "--duration", type=positive_int, help="steady: fire seconds measured (default 60)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="steady: extra seconds skipped after the first run (default 0)",
    )
    parser.add_argument("--burst-size", type=positive_int, help="burst: schedules (default 100000)")
    parser.add_argument(
        "--burst-every",
        type=positive_int,
        choices=(5, 10, 15, 20, 30, 60),
        help="burst: seconds between bursts (default 60)",
    )
    parser.add_argument(
        "--burst-trigger",
        choices=("cron", "every"),
        default="cron",
        help="burst: a six-field cron (default) or an aligned every",
    )
    parser.add_argument(
        "--burst-timeout",
        type=seconds,
        default=120.0,
        help="burst: seconds to wait for all runs (default 120)",
    )
    parser.add_argument(
        "--startup-size", type=positive_int, help="startup: schedules (default 100000)"
    )
    parser.add_argument("--idle-size", type=positive_int, help="idle: schedules (default 1000)")
    parser.add_argument(
        "--idle-duration", type=positive_int, help="idle: seconds measured (default 30)"
    )
    parser.add_argument(
        "--failover-size", type=positive_int, help="failover: schedules (default 10000)"
    )
    parser.add_argument(
        "--replicas", type=positive_int, help="failover: replicas, at least 3 (default 3)"
    )
    parser.add_argument(
        "--failover-ttl", type=seconds, help="failover: --lease-ttl of the replicas (default 2)"
    )
    parser.add_argument(
        "--queues",
        type=positive_int,
        default=4,
        help="queues (streams) the schedules spread over (default 4)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=seconds,
        default=10.0,
        help="--lease-ttl of single daemons (default 10, the daemon's)",
    )
    parser.add_argument(
        "--schedule-metrics",
        choices=("auto", "on", "off"),
        default="auto",
        help="passed to the daemon (default auto)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="the daemon's (default INFO)",
    )
    parser.add_argument(
        "--start-timeout",
        type=seconds,
        help="seconds a daemon may take to lead (default 60 + 3 ms per schedule and replica)",
    )
    add_aof_flag(parser)
    parser.add_argument("--seed", type=int, help="seed of the failover signal moments")
    parser.add_argument("--log-dir", help="keep configs and daemon logs in this folder")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the tables"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    base = SMOKE if args.smoke else Sizes()

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    sizes = Sizes(
        steady=pick(args.steady_sizes, base.steady),
        duration_s=pick(args.duration, base.duration_s),
        burst=pick(args.burst_size, base.burst),
        burst_every_s=pick(args.burst_every, base.burst_every_s),
        startup=pick(args.startup_size, base.startup),
        idle=pick(args.idle_size, base.idle),
        idle_duration_s=pick(args.idle_duration, base.idle_duration_s),
        failover=pick(args.failover_size, base.failover),
        replicas=pick(args.replicas, base.replicas),
        failover_ttl_s=pick(args.failover_ttl, base.failover_ttl_s),
        failover_settle_s=base.failover_settle_s,
    )
    if sizes.replicas < 3:
        parser.error("--replicas must be at least 3: the leader is killed, then its successor")
    return args, sizes


def main(argv: Sequence[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    exit_on_sigterm()
    try:
        return run(args, sizes)
    except KeyboardInterrupt:
        print("interrupted; the redis-servers and daemons it started are stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
