"""The floor of a run's write: a bare, pipelined XADD of the same 11-field entry, in Redis time;
and the floor of any script that writes it: the same XADDs called from Lua (XADD_FROM_LUA,
scheduler/store/lua/floor.py), with every value passed in, and with one entry's values already
Lua strings (what redis.call('XADD', ...) itself costs).

Shared by bench_enqueue.py (one instant, alternating rounds) and bench_scale.py (after the
steady 10,000-schedule window, on the same server). Redis's own time comes from `INFO
commandstats`: `usec` of a command is the time spent executing it (for EVALSHA: the script and
every command it calls), not reading or parsing the request off the socket; Redis's process CPU
(`INFO cpu`) is shown beside it, which adds that parsing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis

from scheduler.store.lua import XADD_FROM_LUA

Entry = tuple[str, Sequence[Any]]  # a stream key and an entry's fields, name and value by turns


@dataclass(frozen=True)
class CommandStats:
    calls: int
    usec: int
    failed: int
    cpu_s: float


def command_stats(client: redis.Redis, command: str) -> CommandStats:
    """INFO commandstats of one command (`evalsha`, `xadd`), and Redis's process CPU."""
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    cpu = client.info("cpu")
    return CommandStats(
        calls=int(stats.get("calls", 0)),
        usec=int(stats.get("usec", 0)),
        failed=int(stats.get("failed_calls", 0)) + int(stats.get("rejected_calls", 0)),
        cpu_s=float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
    )


@dataclass(frozen=True)
class Cost:
    """What one round cost Redis, per run."""

    runs: int
    calls: int
    redis_us_per_run: float  # commandstats usec delta / runs
    cpu_us_per_run: float  # INFO cpu delta / runs (adds reading and parsing the requests)
    us_per_call: float  # how long one call blocked Redis, on average
    wall_ms: float  # sending every call and reading every reply, pipelined

    @staticmethod
    def between(before: CommandStats, after: CommandStats, runs: int, wall_s: float) -> Cost:
        calls = after.calls - before.calls
        usec = after.usec - before.usec
        return Cost(
            runs=runs,
            calls=calls,
            redis_us_per_run=usec / runs,
            cpu_us_per_run=(after.cpu_s - before.cpu_s) * 1e6 / runs,
            us_per_call=usec / calls if calls else 0.0,
            wall_ms=wall_s * 1000,
        )


def _rfc3339(ts: float, ms: bool) -> str:
    moment = datetime.fromtimestamp(ts, timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond // 1000:03d}Z" if ms else "Z")


def run_entry(schedule: Any, fire_ts: int, token: int, replica: str) -> list[str]:
    """The fields of DESIGN's run table, as ENQUEUE_STREAM writes them, for one fire."""
    fire_time = _rfc3339(fire_ts, ms=False)
    return [
        "run_id", f"{schedule.name}@{fire_time}",
        "schedule", schedule.name,
        "job", schedule.job,
        "args", schedule.args_json,
        "queue", schedule.queue,
        "fire_time", fire_time,
        "fire_ts", str(fire_ts),
        "enqueued_at", _rfc3339(fire_ts + 0.004, ms=True),
        "trigger", "scheduled",
        "token", str(token),
        "replica", replica,
    ]  # fmt: skip


def schedule_entries(
    key_of: Any, schedules: Sequence[Any], fire_ts: int, token: int, replica: str
) -> list[Entry]:
    """One run of every schedule, into its queue's stream, as ENQUEUE_STREAM would write it."""
    return [(key_of(s.queue), run_entry(s, fire_ts, token, replica)) for s in schedules]


def latest_entries(client: redis.Redis, streams: Sequence[str], count: int) -> list[Entry]:
    """The newest `count` entries over `streams` (spread evenly), each as the key it goes to
    and its field list: the floor of the very runs a daemon wrote."""
    per_stream = -(-count // max(1, len(streams)))
    found: list[Entry] = []
    for key in streams:
        page = client.execute_command("XREVRANGE", key, "+", "-", "COUNT", per_stream)
        found += [(key, list(flat)) for _, flat in page]
    return found[:count]


def _pipelined(
    sender: redis.Redis, admin: redis.Redis, stat: str, commands: Sequence[Sequence[Any]], runs: int
) -> tuple[list[Any], Cost]:
    """Send `commands` on one connection, RESP-encoded before the first is sent, then read
    every reply; their replies, and what they cost Redis per run (cmdstat_<stat>). Raises if
    one failed inside Redis."""
    pool = sender.connection_pool
    packer = pool.connection_class(**pool.connection_kwargs)
    chunks = [chunk for command in commands for chunk in packer.pack_command(*command)]
    before = command_stats(admin, stat)
    connection = pool.get_connection()
    try:
        started = time.perf_counter()
        connection.send_packed_command(chunks)
        replies = [connection.read_response() for _ in commands]
        wall_s = time.perf_counter() - started
    finally:
        pool.release(connection)
    after = command_stats(admin, stat)
    if after.failed != before.failed:
        raise RuntimeError(f"a {stat.upper()} failed inside Redis")
    return replies, Cost.between(before, after, runs, wall_s)


def xadd_floor(sender: redis.Redis, admin: redis.Redis, entries: Sequence[Entry]) -> Cost:
    """XADD every entry, all pipelined on one connection, and what that cost Redis per run."""
    commands = [("XADD", key, "*", *fields) for key, fields in entries]
    return _pipelined(sender, admin, "xadd", commands, len(entries))[1]


LUA_CALL_ENTRIES = 512  # entries per XADD_FROM_LUA call: ENQUEUE_STREAM's call size


def lua_floor(
    sender: redis.Redis, admin: redis.Redis, entries: Sequence[Entry], repeated: bool = False
) -> Cost:
    """XADD every entry from Lua (XADD_FROM_LUA), in calls of LUA_CALL_ENTRIES pipelined on one
    connection, and what that cost Redis per run (cmdstat_evalsha). `repeated`: the first
    entry written len(entries) times instead, its values made Lua strings once per call."""
    if not entries:
        raise RuntimeError("no entries to measure the floor with")
    streams = sorted({key for key, _ in entries})
    index = {key: i + 1 for i, key in enumerate(streams)}
    names = list(entries[0][1][0::2])
    if len(names) != 11:
        raise RuntimeError(f"XADD_FROM_LUA writes DESIGN's 11 fields, not {len(names)}")
    sha = sender.script_load(XADD_FROM_LUA)
    calls: list[list[Any]] = []
    if repeated:
        key, fields = entries[0]
        for start in range(0, len(entries), LUA_CALL_ENTRIES):
            times = min(LUA_CALL_ENTRIES, len(entries) - start)
            calls.append([*names, times, index[key], *fields[1::2]])
    else:
        for start in range(0, len(entries), LUA_CALL_ENTRIES):
            call: list[Any] = [*names, 1]
            for key, fields in entries[start : start + LUA_CALL_ENTRIES]:
                call += [index[key], *fields[1::2]]
            calls.append(call)
    commands = [("EVALSHA", sha, len(streams), *streams, *call) for call in calls]
    replies, cost = _pipelined(sender, admin, "evalsha", commands, len(entries))
    written = sum(int(reply) for reply in replies)
    if written != len(entries):
        raise RuntimeError(f"XADD_FROM_LUA wrote {written} of {len(entries)} entries")
    return cost


def floor_of_latest(
    client: redis.Redis,
    streams: Sequence[str],
    count: int,
    scratch: Any,
    rounds: int = 5,
    gap_s: float = 1.0,
    measure: Callable[[redis.Redis, redis.Redis, Sequence[Entry]], Cost] | None = None,
) -> Cost:
    """The floor of what a daemon just wrote: its newest `count` entries XADDed again, as they
    are, into scratch streams (`scratch(i)` for the i-th of `streams`), once unmeasured (the
    new streams' first nodes), then `rounds` times `gap_s` apart, as a leader's instants come
    (an idle second lets the caches go cold: back-to-back rounds measure a warmer Redis than
    the daemon's writes met); the round of median Redis time. `measure`: xadd_floor unless
    another (lua_floor) is given."""
    write = measure or xadd_floor
    keys = {key: scratch(i) for i, key in enumerate(streams)}
    entries = [(keys[key], fields) for key, fields in latest_entries(client, streams, count)]
    if not entries:
        raise RuntimeError("no entries to measure the floor with")
    write(client, client, entries)
    costs = []
    for _ in range(rounds):
        time.sleep(gap_s)
        costs.append(write(client, client, entries))
    costs.sort(key=lambda cost: cost.redis_us_per_run)
    for key in set(keys.values()):
        client.delete(key)
    return costs[len(costs) // 2]
