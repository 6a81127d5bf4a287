"""Failover gaps with real daemon processes: SIGKILL and SIGTERM of the leader, round after round.

    python bench/bench_failover.py [--rounds 5] [--ttl 1] [--json]

Starts its own redis-server and three `python -m scheduler run` replicas sharing an `every: 1s`
schedule (`catchup: all`). Each round waits for the leader to enqueue steadily, signals it, and
measures the leader gap (from the signal until `{cronlease}:leader` names another replica,
polled every 2 ms) and the run gap (the largest enqueued_at difference between consecutive runs
from the last one before the signal until the new leader is on time again); the signalled
replica is then restarted under the same id. SIGKILL rounds come first, then SIGTERM rounds.
At the end every run in the stream is checked: each fire once, no fire missing between the first
and the last, fencing tokens never decreasing in stream order.

Targets (DESIGN, "Invariants" 4): a crashed leader is replaced within the lease TTL plus one
retry interval (TTL/3), a gracefully stopped one within a second. The run gap's target is the
schedule's interval plus that. Exit status 1 when a target or an invariant fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from benchkit import (
    RedisProcess,
    Timeout,
    add_aof_flag,
    daemon_command,
    die_with_parent,
    exit_on_sigterm,
    parse_rfc3339,
    poll_until,
    table,
)

from scheduler.core.config import parse_config
from scheduler.store.keys import Keys

SCHEDULE = "beat"
SCHEDULES_YAML = f"""\
schedules:
  {SCHEDULE}:
    every: 1s
    job: bench.beat
    catchup: all
"""
INTERVAL_S = 1.0
REPLICAS = 3
KEYS = Keys("cronlease")
STREAM = KEYS.queue("default")
LEADER_POLL_S = 0.002
SIGTERM_TARGET_S = 1.0
EXIT_TIMEOUT_S = 5.0
START_TIMEOUT_S = 15.0


class Replica:
    """One `python -m scheduler run` process; its output goes to `<log_dir>/<id>.log`."""

    def __init__(
        self, replica_id: str, config: Path, redis_url: str, ttl_s: float, log_dir: Path
    ) -> None:
        self.replica_id = replica_id
        self.log_path = log_dir / f"{replica_id}.log"
        self._command = daemon_command(config, redis_url, replica_id, ttl_s)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:  # appended to across restarts
            self.process = subprocess.Popen(
                self._command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches us only; we stop the replicas
                preexec_fn=die_with_parent,
            )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait_exit(self, timeout_s: float) -> int:
        assert self.process is not None
        code = poll_until(
            lambda: (self.exit_code(),) if self.exit_code() is not None else None,
            timeout_s,
            0.01,
            f"replica {self.replica_id} to exit",
        )[0]
        assert code is not None
        return code

    def kill(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """The replicas r1..rN; every process is killed on leaving the `with` block."""

    def __init__(
        self, count: int, config: Path, redis_url: str, ttl_s: float, log_dir: Path
    ) -> None:
        self.replicas = {
            f"r{i}": Replica(f"r{i}", config, redis_url, ttl_s, log_dir)
            for i in range(1, count + 1)
        }

    def __enter__(self) -> Cluster:
        try:
            for replica in self.replicas.values():
                replica.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for replica in self.replicas.values():
            replica.kill()


@dataclass(frozen=True)
class Run:
    entry_id: str
    fire_ts: int
    enqueued_ts: float
    token: int
    replica: str
    trigger: str


@dataclass
class Round:
    kind: str
    victim: str
    token: int
    phase_s: float  # when the signal went, after a run of the steady leader
    leader_gap_s: float | None = None  # None: no new leader before the deadline
    successor: str | None = None
    run_gap_s: float | None = None
    exit_code: int | None = None  # SIGTERM only
    problems: list[str] = field(default_factory=list)


def read_runs(client: redis.Redis, start: str = "-") -> list[Run]:
    runs: list[Run] = []
    while True:
        page: list[tuple[str, dict[str, str]]]
        page = client.xrange(STREAM, start, "+", count=1000)  # type: ignore[assignment]
        runs += [
            Run(
                entry_id=entry_id,
                fire_ts=int(fields["fire_ts"]),
                enqueued_ts=parse_rfc3339(fields["enqueued_at"]),
                token=int(fields["token"]),
                replica=fields["replica"],
                trigger=fields["trigger"],
            )
            for entry_id, fields in page
        ]
        if len(page) < 1000:
            return runs
        start = "(" + page[-1][0]


def leader_of(client: redis.Redis) -> tuple[int, str] | None:
    value = client.get(KEYS.leader)
    if value is None:
        return None
    token, replica = str(value).split(":", 1)
    return int(token), replica


def last_run(client: redis.Redis) -> Run | None:
    entries: list[tuple[str, dict[str, str]]]
    entries = client.xrevrange(STREAM, count=1)  # type: ignore[assignment]
    return read_runs(client, entries[0][0])[0] if entries else None


def connections(client: redis.Redis, replica_id: str) -> tuple[int, int]:
    """(commands, subscribers): the replica's connections Redis lists, by kind.

    A ready replica has both: its main loop's and its handover watch's (which may be named with
    a `-watch` suffix).
    """
    names = {f"cronlease-{replica_id}", f"cronlease-{replica_id}-watch"}
    ours = [entry for entry in client.client_list() if entry.get("name") in names]
    subscribers = sum(int(entry.get("sub", 0)) > 0 for entry in ours)
    return len(ours) - subscribers, subscribers


def wait_steady(client: redis.Redis, ttl_s: float) -> tuple[int, str]:
    """Until one replica leads and has enqueued two runs under its token; returns its lease."""
    holder = poll_until(lambda: leader_of(client), START_TIMEOUT_S, 0.01, "a leader")
    after = last_run(client)
    start = "(" + after.entry_id if after else "-"
    poll_until(
        lambda: sum(run.token == holder[0] for run in read_runs(client, start)) >= 2,
        2 * INTERVAL_S + 2 * ttl_s + 5,
        0.01,
        f"two runs from leader {holder[1]} (token {holder[0]})",
    )
    return holder


def restart(cluster: Cluster, client: redis.Redis, replica_id: str) -> None:
    """Start the replica again, once Redis has dropped the old process's connections."""
    poll_until(
        lambda: connections(client, replica_id) == (0, 0),
        5.0,
        0.01,
        f"Redis to drop {replica_id}'s old connections",
    )
    cluster.replicas[replica_id].start()
    poll_until(
        lambda: min(connections(client, replica_id)) > 0,
        START_TIMEOUT_S,
        0.02,
        f"restarted {replica_id} to connect",
    )


def failover_round(
    kind: str,
    cluster: Cluster,
    client: redis.Redis,
    ttl_s: float,
    target_s: float,
    phase_s: float,
) -> Round:
    """One failover; the signal goes `phase_s` after the steady leader's latest run."""
    token, leader = wait_steady(client, ttl_s)
    victim = cluster.replicas[leader]
    result = Round(kind, leader, token, phase_s)
    signal_at = time.monotonic() + phase_s
    poll_until(lambda: time.monotonic() >= signal_at, phase_s + 1, 0.001, "the signal moment")
    before = last_run(client)
    assert before is not None  # wait_steady saw two runs
    signalled = time.perf_counter()
    victim.signal(signal.SIGKILL if kind == "SIGKILL" else signal.SIGTERM)

    def successor() -> tuple[int, str] | None:
        holder = leader_of(client)
        return holder if holder is not None and holder[1] != leader else None

    try:
        holder = poll_until(
            successor,
            max(5.0, 3 * target_s),
            LEADER_POLL_S,
            f"a leader other than {leader}",
        )
        result.leader_gap_s = time.perf_counter() - signalled
        result.successor = holder[1]
    except Timeout as error:
        result.problems.append(str(error))
    taken_over_wall = time.time()
    if kind == "SIGTERM":
        try:
            result.exit_code = victim.wait_exit(EXIT_TIMEOUT_S)
            if result.exit_code != 0:
                result.problems.append(f"{leader} exited {result.exit_code} after SIGTERM")
        except Timeout as error:
            result.problems.append(str(error))
    victim.kill()
    if result.problems:
        result.problems.append(f"{leader}'s log ends:\n{victim.log_tail()}")
    restart(cluster, client, leader)
    # On time again: the new leader has enqueued a fire due after it took over.
    on_time_from = math.floor(taken_over_wall) + INTERVAL_S
    poll_until(
        lambda: (run := last_run(client)) is not None and run.fire_ts >= on_time_from,
        max(10.0, 3 * target_s + 5),
        0.02,
        "runs after the failover",
    )
    around = read_runs(client, before.entry_id)
    result.run_gap_s = max(
        later.enqueued_ts - earlier.enqueued_ts for earlier, later in itertools.pairwise(around)
    )
    return result


@dataclass(frozen=True)
class Invariants:
    runs: int
    first_fire_ts: int
    last_fire_ts: int
    duplicates: int  # extra copies of a (schedule, fire_ts)
    missing: int  # timeline fires between the first and the last that never came
    unexpected: int  # fires that are not on the timeline
    token_regressions: int  # entries whose token is below an earlier entry's
    leaders: int  # distinct fencing tokens that wrote
    catchup_runs: int

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.missing or self.unexpected or self.token_regressions)


def check_invariants(runs: Sequence[Run]) -> Invariants:
    timeline = parse_config(SCHEDULES_YAML).by_name()[SCHEDULE].timeline
    seen = Counter(run.fire_ts for run in runs)
    first, last = min(seen), max(seen)
    expected: set[int] = set()
    fire = timeline.next_after(first - 1)
    while fire is not None and fire <= last:
        expected.add(fire)
        fire = timeline.next_after(fire)
    highest = 0
    regressions = 0
    for run in runs:
        regressions += run.token < highest
        highest = max(highest, run.token)
    return Invariants(
        runs=len(runs),
        first_fire_ts=first,
        last_fire_ts=last,
        duplicates=sum(count - 1 for count in seen.values()),
        missing=len(expected - seen.keys()),
        unexpected=len(seen.keys() - expected),
        token_regressions=regressions,
        leaders=len({run.token for run in runs}),
        catchup_runs=sum(run.trigger == "catchup" for run in runs),
    )


def summary(kind: str, what: str, gaps: Sequence[float | None], target_s: float) -> dict[str, Any]:
    measured = [gap for gap in gaps if gap is not None]
    return {
        "kind": kind,
        "measure": what,
        "rounds": len(gaps),
        "gaps_ms": [None if gap is None else round(gap * 1000, 1) for gap in gaps],
        "min_ms": round(min(measured) * 1000, 1) if measured else None,
        "median_ms": round(statistics.median(measured) * 1000, 1) if measured else None,
        "max_ms": round(max(measured) * 1000, 1) if measured else None,
        "target_ms": round(target_s * 1000, 1),
        "pass": len(measured) == len(gaps) and max(measured, default=0) <= target_s,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    ttl_s: float = args.ttl
    targets = {"SIGKILL": ttl_s + ttl_s / 3, "SIGTERM": SIGTERM_TARGET_S}
    rounds: list[Round] = []
    # The signal lands at a random point of the schedule's interval (and so of the renewal
    # cycle): right after a run, no fire would fall into a SIGKILL's gap.
    phases = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="cronlease-bench-failover-") as folder:
        config = Path(folder) / "schedules.yaml"
        config.write_text(SCHEDULES_YAML)
        log_dir = Path(args.log_dir or folder)
        log_dir.mkdir(parents=True, exist_ok=True)
        with RedisProcess(args.aof) as server:
            client = server.client()
            try:
                with Cluster(REPLICAS, config, server.url, ttl_s, log_dir) as cluster:
                    for kind in ("SIGKILL", "SIGTERM"):
                        for _ in range(args.rounds):
                            phase_s = phases.uniform(0, INTERVAL_S)
                            rounds.append(
                                failover_round(kind, cluster, client, ttl_s, targets[kind], phase_s)
                            )
                            if not args.json:
                                print(describe(rounds[-1]), flush=True)
                    invariants = check_invariants(read_runs(client))
                version = server.version()
                persistence = server.persistence
            finally:
                client.close()
    rows = []
    for kind in ("SIGKILL", "SIGTERM"):
        of_kind = [r for r in rounds if r.kind == kind]
        rows.append(summary(kind, "leader", [r.leader_gap_s for r in of_kind], targets[kind]))
        rows.append(
            summary(kind, "runs", [r.run_gap_s for r in of_kind], INTERVAL_S + targets[kind])
        )
    problems = [problem for r in rounds for problem in r.problems]
    return {
        "redis_version": version,
        "persistence": persistence,
        "replicas": REPLICAS,
        "ttl_s": ttl_s,
        "retry_interval_s": ttl_s / 3,
        "rounds": args.rounds,
        "per_round": [
            {
                "kind": r.kind,
                "victim": r.victim,
                "token": r.token,
                "successor": r.successor,
                "phase_ms": round(r.phase_s * 1000, 1),
                "leader_gap_ms": None if r.leader_gap_s is None else round(r.leader_gap_s * 1e3, 1),
                "run_gap_ms": None if r.run_gap_s is None else round(r.run_gap_s * 1e3, 1),
                "exit_code": r.exit_code,
            }
            for r in rounds
        ],
        "gaps": rows,
        "invariants": {**asdict(invariants), "ok": invariants.ok},
        "problems": problems,
        "pass": all(row["pass"] for row in rows) and invariants.ok and not problems,
    }


def describe(result: Round) -> str:
    def ms(value: float | None) -> str:
        return "timeout" if value is None else f"{value * 1000:.1f} ms"

    text = (
        f"{result.kind} {result.victim} (token {result.token}) "
        f"{result.phase_s * 1000:.0f} ms after a run -> {result.successor}: "
        f"leader gap {ms(result.leader_gap_s)}, run gap {ms(result.run_gap_s)}"
    )
    if result.exit_code is not None:
        text += f", exit {result.exit_code}"
    return text


def report(figures: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [
        (
            row["kind"],
            row["measure"],
            row["rounds"],
            ms(row["min_ms"]),
            ms(row["median_ms"]),
            ms(row["max_ms"]),
            ms(row["target_ms"]),
            "pass" if row["pass"] else "FAIL",
        )
        for row in figures["gaps"]
    ]
    header = ("kind", "gap", "rounds", "min ms", "median ms", "max ms", "target ms", "result")
    inv = figures["invariants"]
    per_round = figures["per_round"]
    ttl = figures["ttl_s"]
    lines = [
        f"cronlease failover: {figures['replicas']} replicas, lease TTL {ttl:g}s "
        f"(retry interval {figures['retry_interval_s'] * 1000:.0f} ms), one `every: 1s` "
        f"schedule, redis {figures['redis_version']} ({figures['persistence']})",
        "",
        table(header, rows),
        "",
        "leader gap: signal -> the leader key names another replica (polled every 2 ms); "
        "target TTL + TTL/3 for SIGKILL, 1 s for SIGTERM.",
        "run gap: largest enqueued_at step between consecutive runs around the failover; "
        "target 1 s interval + the leader target.",
        f"SIGTERM exit codes: {[r['exit_code'] for r in per_round if r['kind'] == 'SIGTERM']}",
        f"invariants over {inv['runs']} runs ({inv['leaders']} leaders, "
        f"{inv['catchup_runs']} catch-up runs): {inv['duplicates']} duplicates, "
        f"{inv['missing']} missing, {inv['unexpected']} off-timeline, "
        f"{inv['token_regressions']} token regressions -> {'pass' if inv['ok'] else 'FAIL'}",
    ]
    lines += [f"problem: {problem}" for problem in figures["problems"]]
    lines.append(f"overall: {'PASS' if figures['pass'] else 'FAIL'}")
    return "\n".join(lines)


def positive_float(text: str) -> float:
    value = float(text.removesuffix("s"))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per kind (SIGKILL, SIGTERM)")
    parser.add_argument(
        "--ttl", type=positive_float, default=1.0, help="--lease-ttl of the replicas, seconds"
    )
    add_aof_flag(parser)
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the random signal moments (default: any)"
    )
    parser.add_argument(
        "--log-dir", help="keep the replicas' logs (<replica-id>.log) in this folder"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    try:
        figures = run(args)
    except KeyboardInterrupt:
        print("interrupted; the redis-server and replicas it started are stopped", file=sys.stderr)
        return 130
    print(json.dumps(figures) if args.json else report(figures))
    return 0 if figures["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
