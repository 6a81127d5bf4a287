"""RoutedTarget and ENQUEUE_TARGET on a real Redis: fence, cursor, pause, guard, type checks,
another logical database, and stream and target queues in one batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis import Redis

from scheduler.core.config import parse_config
from scheduler.core.queues import QueueSpec
from scheduler.core.runs import DueFire, Lease, Outcome, Trigger
from scheduler.store.keys import Keys
from scheduler.store.scripts import Scripts
from scheduler.targets.encoding import Length, Run, Writes
from scheduler.targets.router import RoutedTarget
from tests.redis_server import RedisServer

KEYS = Keys("cronlease")
CONFIG = parse_config(
    """\
queues:
  jobs: {target: rq, db: 2}
  here: {target: rq}
schedules:
  a: {every: 1s, job: mod.a, queue: jobs, args: {n: 1}}
  b: {every: 1s, job: mod.b, queue: jobs, args: [1, 2]}
  s: {every: 1s, job: mod.s}
  h: {every: 1s, job: mod.h, queue: here}
"""
)
A, B, S, H = CONFIG.schedules
T0 = 1795312800


class ListEncoder:
    """The smallest real encoder: the job as a hash, its id pushed on a list."""

    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec

    def writes(self, run: Run) -> Writes:
        job = f"job:{run.run_id}"
        return Writes(
            (
                ("HSET", job, "job", run.job, "args", run.args_json, "token", run.token),
                ("RPUSH", f"list:{self.spec.name}", run.run_id),
            ),
            guard=job,
        )

    def lengths(self) -> Sequence[Length]:
        return [Length(f"list:{self.spec.name}", "list")]

    def job_id(self, run_id: str) -> str:
        return run_id


def routed(redis: Redis) -> tuple[RoutedTarget, Lease, Scripts]:
    scripts = Scripts(redis, KEYS)
    reply = scripts.acquire("r1", 5000, "gen-1")
    lease = Lease(f"{reply.token}:r1", reply.token, "r1")
    return RoutedTarget(scripts, KEYS, CONFIG.queues, 0, make_encoder=ListEncoder), lease, scripts


def fires(*items: tuple[Any, int]) -> list[DueFire]:
    return [DueFire(schedule, ts, Trigger.SCHEDULED) for schedule, ts in items]


def send(target: RoutedTarget, lease: Lease, batch: list[DueFire]) -> list[Outcome]:
    return target.send(target.prepare(lease, batch, T0 + 0.5)).outcomes


def test_runs_land_in_the_targets_db_and_the_cursor_in_the_schedulers(
    redis: Redis, redis_server: RedisServer
) -> None:
    target, lease, _ = routed(redis)
    batch = fires((A, T0), (A, T0 + 1), (B, T0), (S, T0), (H, T0))
    assert send(target, lease, batch) == [Outcome.ENQUEUED] * 5
    db2 = redis_server.client(db=2, decode_responses=False)
    assert db2.lrange("list:jobs", 0, -1) == [
        b"a@2026-11-22T02:00:00Z",
        b"a@2026-11-22T02:00:01Z",
        b"b@2026-11-22T02:00:00Z",
    ]
    assert db2.hgetall("job:b@2026-11-22T02:00:00Z") == {
        b"job": b"mod.b",
        b"args": b"[1,2]",
        b"token": str(lease.token).encode(),
    }
    assert redis.lrange("list:here", 0, -1) == ["h@2026-11-22T02:00:00Z"]
    assert redis.xlen(KEYS.queue("default")) == 1
    assert redis.hgetall(KEYS.cursor) == {
        "a": str(T0 + 1),
        "b": str(T0),
        "s": str(T0),
        "h": str(T0),
    }
    assert not redis.exists("list:jobs")  # nothing leaked into the scheduler's own db


def test_a_resent_batch_is_a_duplicate_and_writes_nothing(redis: Redis) -> None:
    target, lease, _ = routed(redis)
    batch = fires((H, T0), (H, T0 + 1))
    prepared = target.prepare(lease, batch, T0)
    assert target.send(prepared).outcomes == [Outcome.ENQUEUED] * 2
    assert target.send(prepared).outcomes == [Outcome.DUPLICATE] * 2
    assert redis.llen("list:here") == 2


def test_a_run_already_in_the_target_is_a_duplicate_and_moves_the_cursor(redis: Redis) -> None:
    target, lease, _ = routed(redis)
    redis.hset("job:h@2026-11-22T02:00:00Z", "job", "written before the cursor was lost")
    assert send(target, lease, fires((H, T0))) == [Outcome.DUPLICATE]
    assert redis.llen("list:here") == 0
    assert redis.hget(KEYS.cursor, "h") == str(T0)


def test_a_fenced_call_writes_nothing(redis: Redis) -> None:
    target, lease, scripts = routed(redis)
    redis.delete(KEYS.leader)
    scripts.acquire("r2", 5000, "gen-1")
    assert send(target, lease, fires((H, T0), (A, T0))) == [Outcome.FENCED] * 2
    assert redis.llen("list:here") == 0 and not redis.exists(KEYS.cursor)


def test_a_paused_schedule_moves_its_cursor_and_writes_nothing(redis: Redis) -> None:
    target, lease, _ = routed(redis)
    redis.sadd(KEYS.paused, "h")
    assert send(target, lease, fires((H, T0))) == [Outcome.PAUSED]
    assert redis.llen("list:here") == 0 and redis.hget(KEYS.cursor, "h") == str(T0)


def test_a_key_of_another_type_refuses_only_the_runs_that_touch_it(redis: Redis) -> None:
    target, lease, _ = routed(redis)
    redis.set("list:here", "someone else's string")
    outcomes = send(target, lease, fires((H, T0), (S, T0)))
    assert outcomes == [Outcome.REFUSED, Outcome.ENQUEUED]
    assert redis.get("list:here") == "someone else's string"
    assert redis.hget(KEYS.cursor, "h") is None
    assert not redis.exists("job:h@2026-11-22T02:00:00Z")  # checked before any write


def test_a_fire_in_redis_future_is_never_written(redis: Redis) -> None:
    target, lease, _ = routed(redis)
    future = int(redis.time()[0]) + 3600
    prepared = target.prepare(lease, fires((H, future)), future)
    try:
        target.send(prepared)
    except Exception as error:  # the script refused the early call every time
        assert "clock" in str(error)
    assert redis.llen("list:here") == 0


def test_many_fires_go_in_calls_that_keep_each_schedules_fires_together(redis: Redis) -> None:
    target, lease, _ = routed(redis)
    batch = fires(*[(H, T0 + i) for i in range(300)], *[(A, T0 + i) for i in range(300)])
    prepared = target.prepare(lease, batch, T0)
    assert prepared.target_counts == [300, 300] or sum(prepared.target_counts) == 600
    assert target.send(prepared).outcomes == [Outcome.ENQUEUED] * 600
    assert redis.llen("list:here") == 300
