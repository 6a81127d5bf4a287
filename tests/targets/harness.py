"""The proof every target test makes, from what the REAL worker executed.

Three cronlease replicas (1 s lease) deliver every-second schedules into one target queue; the
leader is SIGKILLed twice; then the replicas stop cleanly and the cursors say which fires were
handled. The worker's own record (each job writes the id it was given) must then hold every one
of those fires exactly once: none lost across the kills, none twice.
"""

from __future__ import annotations

import calendar
import signal
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis as redis_py

from scheduler.core.timefmt import rfc3339_utc
from tests.daemons import KEYS, Daemon, wait_for_leader
from tests.redis_server import RedisServer, wait_until

SCHEDULES = ("tick-a", "tick-b", "tick-c")
TTL_S = 1.0


@dataclass(frozen=True)
class Proof:
    executed: list[str]  # run ids, in the order the worker recorded them
    expected: set[str]
    log_dir: Path
    leaders: list[str]  # the lease holder (`<token>:<replica>`) at each step, in order


def config_text(queue_yaml: str, job: str, args_yaml: str, queue: str = "jobs") -> str:
    """A schedules.yaml: SCHEDULES firing every second into `queue`, delivered as
    `queue_yaml` (the queue's mapping body, e.g. "target: celery\\ndb: 1") says."""
    body = textwrap.indent(textwrap.dedent(queue_yaml).strip(), "    ")
    lines = ["queues:", f"  {queue}:", body, "schedules:"]
    for name in SCHEDULES:
        lines.append(f"  {name}: {{every: 1s, job: {job}, queue: {queue}, args: {args_yaml}}}")
    return "\n".join(lines) + "\n"


def prove_exactly_once_through_failover(
    redis_server: RedisServer,
    tmp_path: Path,
    queue_yaml: str,
    job: str,
    executed: Callable[[], Sequence[str]],
    *,
    args_yaml: str = "{n: 1}",
    kills: int = 2,
    settle_timeout_s: float = 30.0,
    outage: tuple[Callable[[], None], Callable[[], None]] | None = None,
    outage_s: float = 3.0,
    duplicates_allowed: Callable[[list[str]], int] | None = None,
    env: dict[str, str] | None = None,
    ttl_s: float = TTL_S,
    worker_log: Callable[[], str] | None = None,
) -> Proof:
    """Run the scenario; `executed()` returns the run ids the worker has executed so far
    (decoded from its job ids), duplicates included. Asserts exactly once; returns the proof.

    `outage` = (stop, start): after the first kill the target is stopped for `outage_s` while
    runs keep firing (the relay's outbox grows), then started again; with kills=0, once the
    first runs are in (`ttl_s` the default 10 s lease: the leader must ride the outage out, and
    `leaders` shows it did). `duplicates_allowed`, for
    a target without dedup (RabbitMQ): given the run ids executed twice, returns how many
    duplicates the relays counted (their metrics or logs); more than that fails the test.
    `worker_log`, when given, is shown beside the daemons' logs if the worker stops progressing."""
    config = tmp_path / "schedules.yaml"
    config.write_text(config_text(queue_yaml, job, args_yaml))
    client = redis_server.client()
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    daemons = [
        Daemon(f"r{i}", config, redis_server.url, log_dir, ttl_s, env=env) for i in (1, 2, 3)
    ]
    leaders: list[str] = []

    def target_outage() -> None:
        if outage is not None:
            stop, start = outage
            stop()
            # Runs keep firing into the outbox meanwhile; nothing to wait for but time.
            time.sleep(outage_s)
            start()

    try:
        if kills == 0:
            wait_for_leader(client, timeout_s=15)
            leaders.append(str(client.get(KEYS.leader)))
            _wait_for_more(executed, 2 * len(SCHEDULES), daemons, worker_log)
            target_outage()
        for round_ in range(kills):
            leader = wait_for_leader(client, timeout_s=15)
            _wait_for_more(executed, 2 * len(SCHEDULES), daemons, worker_log)
            victim = next(d for d in daemons if d.replica_id == leader)
            victim.signal(signal.SIGKILL)
            victim.kill()
            wait_for_leader(client, timeout_s=10, other_than=leader)
            leaders.append(str(client.get(KEYS.leader)))
            daemons.append(
                Daemon(f"r{4 + round_}", config, redis_server.url, log_dir, ttl_s, env=env)
            )
            if round_ == 0:
                target_outage()
        _wait_for_more(executed, 2 * len(SCHEDULES), daemons, worker_log)
        leaders.append(str(client.get(KEYS.leader)))
        for daemon in daemons:
            if daemon.alive():
                daemon.signal(signal.SIGTERM)
        for daemon in daemons:
            if daemon.alive():
                daemon.wait(10)
    finally:
        for daemon in daemons:
            daemon.kill()
    expected = _handled_fires(client, executed())
    wait_until(lambda: expected <= set(executed()), settle_timeout_s, 0.1)
    runs = list(executed())
    twice = {run: n for run, n in Counter(runs).items() if n > 1}
    if duplicates_allowed is not None and twice:
        extra = sum(n - 1 for n in twice.values())
        counted = duplicates_allowed(sorted(twice))
        assert extra <= counted, f"{extra} duplicates, {counted} counted: {sorted(twice)[:10]}"
    else:
        assert not twice, f"executed more than once: {sorted(twice.items())[:10]}"
    unexpected = set(runs) - expected
    assert not unexpected, f"executed but never handled by a cursor: {sorted(unexpected)[:10]}"
    return Proof(runs, expected, log_dir, leaders)


def _wait_for_more(
    executed: Callable[[], Sequence[str]],
    more: int,
    daemons: list[Daemon],
    worker_log: Callable[[], str] | None,
) -> None:
    start = len(executed())

    def progressed() -> bool:
        return len(executed()) >= start + more

    try:
        wait_until(progressed, 20, 0.05)
    except AssertionError:
        logs = "\n".join(f"--- {d.replica_id}\n{d.log()[-3000:]}" for d in daemons)
        if worker_log is not None:
            logs += f"\n--- the worker\n{worker_log()[-3000:]}"
        raise AssertionError(f"the worker executed nothing new in 20 s\n{logs}") from None


def _handled_fires(client: redis_py.Redis, runs: Sequence[str]) -> set[str]:
    """Every fire from each schedule's first executed one up to its cursor (the last fire the
    leaders handled): each of them must have run."""
    cursors = {str(k): int(v) for k, v in client.hgetall(KEYS.cursor).items()}
    first: dict[str, int] = {}
    for run in runs:
        schedule, _, fire_time = run.partition("@")
        ts = calendar.timegm(time.strptime(fire_time, "%Y-%m-%dT%H:%M:%SZ"))
        first[schedule] = min(first.get(schedule, ts), ts)
    assert set(first) == set(SCHEDULES), f"schedules executed: {sorted(first)}"
    return {
        f"{name}@{rfc3339_utc(ts)}"
        for name in SCHEDULES
        for ts in range(first[name], cursors[name] + 1)
    }
