"""XADD_FROM_LUA (bench/ only, the floor of any enqueue script) writes exactly the entries it is
given, in order, into the streams they name; with C = N, one entry N times. The floor the bench
prints is only a floor if it writes what ENQUEUE_STREAM writes: DESIGN's 11 fields."""

from __future__ import annotations

from redis import Redis

from scheduler.store.lua import XADD_FROM_LUA

NAMES = ["run_id", "schedule", "job", "args", "queue", "fire_time", "fire_ts", "enqueued_at"]
NAMES += ["trigger", "token", "replica"]


def fields(n: int) -> list[str]:
    values = [f"s{n}@2026-12-04T20:00:00Z", f"s{n}", "jobs.tick", '{"n": 1}', "q"]
    values += ["2026-12-04T20:00:00Z", "1796414400", "2026-12-04T20:00:00.004Z", "scheduled"]
    values += ["1796357909763468", "r1"]
    return [item for pair in zip(NAMES, values, strict=True) for item in pair]


def written(redis: Redis, key: str) -> list[list[str]]:
    return [[item for pair in entry.items() for item in pair] for _, entry in redis.xrange(key)]


def test_every_entry_lands_as_given_in_its_stream(redis: Redis) -> None:
    script = redis.register_script(XADD_FROM_LUA)
    argv: list[object] = [*NAMES, 1]
    for n, stream in ((1, 1), (2, 2), (3, 1)):
        argv += [stream, *fields(n)[1::2]]
    assert script(keys=["floor:a", "floor:b"], args=argv) == 3
    assert written(redis, "floor:a") == [fields(1), fields(3)]
    assert written(redis, "floor:b") == [fields(2)]


def test_one_entry_repeated(redis: Redis) -> None:
    script = redis.register_script(XADD_FROM_LUA)
    assert script(keys=["floor:c"], args=[*NAMES, 5, 1, *fields(7)[1::2]]) == 5
    assert written(redis, "floor:c") == [fields(7)] * 5
