"""The Lua scripts against a real redis-server: lease, fencing, de-duplication, NOSCRIPT."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from redis import Redis

from scheduler.core.config import parse_config
from scheduler.core.runs import DueFire, Lease, Outcome, Trigger
from scheduler.store.keys import Keys
from scheduler.store.lua import ENQUEUE_STREAM
from scheduler.store.scripts import Notice, Scripts, decode_notice
from scheduler.targets.stream import StreamTarget

KEYS = Keys("cronlease")
CONFIG = parse_config(
    """
schedules:
  report:
    cron: "0 3 * * *"
    job: reports.nightly
    args: {format: pdf}
    queue: reports
  beat:
    every: 10s
    job: monitoring.beat
"""
)
REPORT, BEAT = CONFIG.schedules


def lease_for(scripts: Scripts, replica: str = "r1", ttl_ms: int = 5000) -> Lease:
    reply = scripts.acquire(replica, ttl_ms, "gen-1")
    assert reply.token > 0
    return Lease(f"{reply.token}:{replica}", reply.token, replica)


def fires(*items: tuple[Any, int]) -> list[DueFire]:
    return [DueFire(schedule, ts, Trigger.SCHEDULED) for schedule, ts in items]


def test_acquire_gives_increasing_tokens_and_only_one_holder(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    first = scripts.acquire("r1", 5000, "gen-a")
    second = scripts.acquire("r2", 5000, "gen-b")
    assert first.token > 0 and first.generation_created and first.generation == "gen-a"
    assert second.token == 0 and not second.generation_created and second.generation == "gen-a"
    assert 4000 < second.pttl_ms <= 5000
    assert redis.get(KEYS.leader) == f"{first.token}:r1"
    assert scripts.release(f"{first.token}:r1")
    assert scripts.acquire("r2", 5000, "gen-c").token == first.token + 1


def test_a_new_store_starts_tokens_at_redis_time_in_microseconds(redis: Redis) -> None:
    sec, usec = redis.time()
    token = Scripts(redis, KEYS).acquire("r1", 5000, "gen-a").token
    assert sec * 10**6 + usec < token <= sec * 10**6 + usec + 10**6


def test_tokens_are_never_handed_out_twice_even_when_redis_loses_everything(redis: Redis) -> None:
    # Before the fix an emptied store (a restart without persistence, a switch of binaries)
    # started the epoch at 0 again: token 1 a second time, for a different leader.
    scripts = Scripts(redis, KEYS)
    seen = []
    for generation in ("gen-a", "gen-b", "gen-c"):
        reply = scripts.acquire("r1", 5000, generation)
        assert reply.generation_created
        seen.append(reply.token)
        assert scripts.release(f"{reply.token}:r1")
        seen.append(scripts.acquire("r2", 5000, "unused").token)
        redis.flushall()
    assert seen == sorted(set(seen)), f"tokens went down or repeated: {seen}"


def test_an_epoch_above_the_clock_is_kept_when_the_marker_is_written(redis: Redis) -> None:
    # An old store (tokens from 1) that lost only its marker: the epoch jumps to the clock;
    # one already past the clock (a clock set back) is never lowered.
    redis.set(KEYS.epoch, 8 * 10**15)
    assert Scripts(redis, KEYS).acquire("r1", 5000, "gen-a").token == 8 * 10**15 + 1


def test_renew_sets_an_absolute_expiry_and_checks_the_owner(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts, ttl_ms=60_000)
    assert scripts.renew(lease.value, 2000).renewed
    # Absolute: the remaining 60 s are replaced by 2 s, never added to.
    assert 0 < redis.pttl(KEYS.leader) <= 2000
    assert not scripts.renew("99:intruder", 2000).renewed
    assert redis.get(KEYS.leader) == lease.value


def test_release_only_deletes_our_own_lease_and_announces_it(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(KEYS.handover)
    assert not scripts.release("7:someone-else")
    assert redis.get(KEYS.leader) == lease.value
    assert scripts.release(lease.value)
    assert redis.get(KEYS.leader) is None
    deadline = time.monotonic() + 5
    message = None
    while message is None and time.monotonic() < deadline:
        # The first call may only consume the subscribe confirmation.
        message = pubsub.get_message(timeout=1.0)
    assert message is not None and message["data"] == lease.value
    pubsub.close()


def test_enqueue_writes_every_field_of_a_run_and_advances_the_cursor(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    target = StreamTarget(scripts, KEYS)
    outcomes = target.enqueue(lease, fires((REPORT, 1795312800), (BEAT, 1795312810))).outcomes
    assert outcomes == [Outcome.ENQUEUED, Outcome.ENQUEUED]
    [(_, run)] = redis.xrange(KEYS.queue("reports"))
    assert run == {
        "run_id": "report@2026-11-22T02:00:00Z",
        "schedule": "report",
        "job": "reports.nightly",
        "args": json.dumps({"format": "pdf"}, separators=(",", ":")),
        "queue": "reports",
        "fire_time": "2026-11-22T02:00:00Z",
        "fire_ts": "1795312800",
        "enqueued_at": run["enqueued_at"],
        "trigger": "scheduled",
        "token": str(lease.token),
        "replica": "r1",
    }
    assert redis.xlen(KEYS.queue("default")) == 1
    assert redis.hgetall(KEYS.cursor) == {"report": "1795312800", "beat": "1795312810"}
    # enqueued_at is Redis's own clock when the script ran, to the millisecond.
    redis_now = float(redis.time()[0])
    written = datetime.fromisoformat(run["enqueued_at"].replace("Z", "+00:00")).timestamp()
    assert redis_now - 5 <= written <= redis_now + 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", run["enqueued_at"])


def test_an_enqueue_retried_after_a_lost_reply_is_a_duplicate(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    target = StreamTarget(scripts, KEYS)
    batch = fires((BEAT, 1795312810), (BEAT, 1795312820))
    assert target.enqueue(lease, batch).outcomes == [Outcome.ENQUEUED] * 2
    # The reply never reached us; we send the same batch again.
    assert target.enqueue(lease, batch).outcomes == [Outcome.DUPLICATE] * 2
    assert redis.xlen(KEYS.queue("default")) == 2


def test_a_fire_older_than_the_cursor_is_a_duplicate(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    target = StreamTarget(scripts, KEYS)
    assert target.enqueue(lease, fires((BEAT, 1795312820))).outcomes == [Outcome.ENQUEUED]
    assert target.enqueue(lease, fires((BEAT, 1795312810))).outcomes == [Outcome.DUPLICATE]


def test_a_stale_leader_is_fenced_and_writes_nothing(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    old = lease_for(scripts, "old", ttl_ms=5000)
    redis.delete(KEYS.leader)  # the old lease expired...
    new = lease_for(scripts, "new")  # ...and another replica took over
    target = StreamTarget(scripts, KEYS)
    assert target.enqueue(old, fires((BEAT, 1795312810), (REPORT, 1795312800))).outcomes == [
        Outcome.FENCED,
        Outcome.FENCED,
    ]
    assert redis.xlen(KEYS.queue("default")) == 0
    assert redis.hgetall(KEYS.cursor) == {}
    assert target.enqueue(new, fires((BEAT, 1795312810))).outcomes == [Outcome.ENQUEUED]
    assert new.token > old.token


def test_a_paused_schedule_advances_its_cursor_without_a_run(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    redis.sadd(KEYS.paused, "beat")
    target = StreamTarget(scripts, KEYS)
    outcomes = target.enqueue(lease, fires((BEAT, 1795312810), (REPORT, 1795312800))).outcomes
    assert outcomes == [Outcome.PAUSED, Outcome.ENQUEUED]
    assert redis.xlen(KEYS.queue("default")) == 0
    assert redis.hget(KEYS.cursor, "beat") == "1795312810"


def test_a_queue_key_of_another_type_is_refused_before_anything_is_written(redis: Redis) -> None:
    # Redis does not roll a script back: before the fix, the XADD to the broken key failed
    # after the XADDs before it in the call, the cursor stayed, and every retry wrote those
    # again. Now the call checks key types first: the broken queue's fires are refused (cursor
    # unmoved), the others are written once.
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    redis.rpush(KEYS.queue("reports"), "a list, not a stream")
    target = StreamTarget(scripts, KEYS)
    batch = fires((BEAT, 1795312810), (REPORT, 1795312800), (BEAT, 1795312820))
    for _ in range(3):  # the daemon retries a refused queue: nothing doubles meanwhile
        outcomes = target.enqueue(lease, batch).outcomes
        assert outcomes[1] == Outcome.REFUSED
    assert redis.xlen(KEYS.queue("default")) == 2
    assert redis.hget(KEYS.cursor, "report") is None
    assert redis.lrange(KEYS.queue("reports"), 0, -1) == ["a list, not a stream"]
    redis.delete(KEYS.queue("reports"))
    assert target.enqueue(lease, batch).outcomes == [
        Outcome.DUPLICATE,
        Outcome.ENQUEUED,
        Outcome.DUPLICATE,
    ]


MIXED = parse_config(
    """
schedules:
  report: {every: 10s, job: reports.nightly, queue: reports}
  other: {every: 10s, job: reports.other, args: [1, 2], queue: reports}
  beat: {every: 10s, job: monitoring.beat}
"""
)


def test_one_call_of_several_queues_seconds_and_triggers_keeps_each_fires_outcome(
    redis: Redis,
) -> None:
    # A call groups its fires by (fire_ts, stream, trigger), oldest first: each outcome must
    # still land on its own fire, and a schedule's catch-up fires go out oldest first.
    report, other, beat = MIXED.schedules
    t = 1795312800
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    redis.hset(KEYS.cursor, "report", t)
    redis.sadd(KEYS.paused, "other")
    batch = [
        DueFire(beat, t + 20, Trigger.CATCHUP),
        DueFire(report, t, Trigger.SCHEDULED),
        DueFire(beat, t + 30, Trigger.CATCHUP),
        DueFire(other, t + 10, Trigger.SCHEDULED),
        DueFire(beat, t + 40, Trigger.SCHEDULED),
    ]
    written = StreamTarget(scripts, KEYS).enqueue(lease, batch)
    assert written.outcomes == [
        Outcome.ENQUEUED,
        Outcome.DUPLICATE,
        Outcome.ENQUEUED,
        Outcome.PAUSED,
        Outcome.ENQUEUED,
    ]
    assert len(set(written.enqueued_at_s)) == 1 and written.enqueued_at_s[0] > 0
    runs = [fields for _, fields in redis.xrange(KEYS.queue("default"))]
    assert [(r["run_id"], r["fire_ts"], r["trigger"]) for r in runs] == [
        ("beat@2026-11-22T02:00:20Z", str(t + 20), "catchup"),
        ("beat@2026-11-22T02:00:30Z", str(t + 30), "catchup"),
        ("beat@2026-11-22T02:00:40Z", str(t + 40), "scheduled"),
    ]
    assert {r["job"] for r in runs} == {"monitoring.beat"} and runs[0]["queue"] == "default"
    assert redis.xlen(KEYS.queue("reports")) == 0
    assert redis.hgetall(KEYS.cursor) == {
        "report": str(t),
        "other": str(t + 10),
        "beat": str(t + 40),
    }


def test_a_call_with_a_fire_in_redis_future_writes_nothing(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    now = int(redis.time()[0])
    prepared = StreamTarget(scripts, KEYS).prepare(
        lease, fires((REPORT, now - 60), (BEAT, now + 3600))
    )
    [command] = prepared.commands.commands
    redis.script_load(ENQUEUE_STREAM)
    assert redis.execute_command(*command) == -2
    assert redis.xlen(KEYS.queue("reports")) == 0 and not redis.exists(KEYS.cursor)


def test_advance_cursors_only_raises_and_is_fenced(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    redis.hset(KEYS.cursor, mapping={"old": "100", "ahead": "900"})
    assert scripts.advance_cursors(lease.value, {"old": 500, "ahead": 500, "new": 500})
    assert redis.hgetall(KEYS.cursor) == {"old": "500", "ahead": "900", "new": "500"}
    assert not scripts.advance_cursors("1:someone-else", {"old": 800})
    assert redis.hget(KEYS.cursor, "old") == "500"
    many = {f"s{i}": 700 for i in range(12_000)}  # more than one call's worth
    assert scripts.advance_cursors(lease.value, many)
    assert redis.hlen(KEYS.cursor) == 3 + 12_000


def test_scripts_are_reloaded_after_redis_forgets_them(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    redis.script_flush()  # what a restarted Redis looks like to EVALSHA: NOSCRIPT
    target = StreamTarget(scripts, KEYS)
    assert target.enqueue(lease, fires((BEAT, 1795312810))).outcomes == [Outcome.ENQUEUED]


def test_a_large_batch_is_split_but_stays_fenced_as_a_whole(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    lease = lease_for(scripts)
    target = StreamTarget(scripts, KEYS)
    batch = fires(*((BEAT, 1795312800 + 10 * i) for i in range(1200)))
    assert target.enqueue(lease, batch).outcomes == [Outcome.ENQUEUED] * 1200
    assert redis.xlen(KEYS.queue("default")) == 1200


@pytest.mark.parametrize("namespace", ["cronlease", "team-a"])
def test_every_key_carries_the_namespace_hash_tag(namespace: str) -> None:
    keys = Keys(namespace)
    tag = "{" + namespace + "}:"
    for key in (
        keys.leader,
        keys.epoch,
        keys.cursor,
        keys.paused,
        keys.generation,
        keys.handover,
        keys.events,
        keys.replicas,
        keys.replica_info,
        keys.queue("default"),
    ):
        assert key.startswith(tag)


def test_a_manual_run_without_a_leader_carries_the_epoch_so_tokens_never_go_down(
    redis: Redis,
) -> None:
    scripts = Scripts(redis, KEYS)
    redis.set(KEYS.epoch, 5)
    fields = ["b@t#manual-1", "beat", "monitoring.beat", "{}", "default", "t", "1", "t", "cli"]
    scripts.manual(KEYS.queue("default"), fields)
    [(_, run)] = redis.xrange(KEYS.queue("default"))
    assert run["token"] == "5" and run["trigger"] == "manual"
    assert redis.hlen(KEYS.cursor) == 0


def next_message(pubsub: Any, timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    message = None
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
    return message


def subscribed(redis: Redis, channel: str) -> Any:
    """A pub/sub on `channel`, returned once Redis confirmed the subscription (so nothing
    published after this is missed)."""
    pubsub = redis.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(channel)
    confirmation = next_message(pubsub)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    return pubsub


def test_a_manual_run_is_announced_on_the_events_channel_in_the_same_call(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    # A 16-digit token (a store started at Redis's TIME in µs) must reach the notice intact.
    redis.set(KEYS.leader, "1760000000123456:r1", px=5000)
    pubsub = subscribed(redis, KEYS.events)
    fields = ["b@t#manual-1", "beat", "monitoring.beat", "{}", "default", "t", "1", "t", "ops-1"]
    entry_id = scripts.manual(KEYS.queue("default"), fields)
    message = next_message(pubsub)
    pubsub.close()
    assert message is not None and message["channel"] == KEYS.events
    notice = decode_notice(message["data"])
    assert notice is not None and notice.event == "manual"
    assert dict(notice.fields) == {
        "run_id": "b@t#manual-1",
        "schedule": "beat",
        "queue": "default",
        "stream": KEYS.queue("default"),
        "entry_id": entry_id,
        "token": "1760000000123456",
        "by": "ops-1",
    }


def test_announce_publishes_an_operator_notice(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    pubsub = subscribed(redis, KEYS.events)
    assert scripts.announce("backfill", {"schedule": "beat", "runs": 3}) == 1
    message = next_message(pubsub)
    pubsub.close()
    assert decode_notice(message["data"]) == Notice("backfill", {"schedule": "beat", "runs": "3"})


def test_leave_removes_only_this_replicas_heartbeat(redis: Redis) -> None:
    scripts = Scripts(redis, KEYS)
    for replica in ("r1", "r2"):
        scripts.heartbeat(replica, '{"role":"follower"}', "", "h", 60_000)
    assert scripts.leave("r1")
    assert redis.zrange(KEYS.replicas, 0, -1) == ["r2"]
    assert redis.hkeys(KEYS.replica_info) == ["r2"]
    assert not scripts.leave("r1")  # a second stop, or one never listed: nothing to do


@pytest.mark.parametrize(
    "ts",
    [0, 59, 951782400, 951868799, 1709164800, 1795312800, 4102444799, 4107542400, 253402300799],
    ids=lambda ts: datetime.fromtimestamp(ts, timezone.utc).isoformat(),
)
def test_the_lua_date_formatter_agrees_with_python(redis: Redis, ts: int) -> None:
    from scheduler.core.timefmt import rfc3339_utc
    from scheduler.store.lua import _LUA_RFC3339

    lua = _LUA_RFC3339 + "return rfc3339(tonumber(ARGV[1])) .. 'Z'"
    assert redis.eval(lua, 0, ts) == rfc3339_utc(ts)


def test_the_lua_date_formatter_agrees_with_python_on_many_days(redis: Redis) -> None:
    from scheduler.core.timefmt import rfc3339_utc
    from scheduler.store.lua import _LUA_RFC3339

    # Every day of 1970-2110 at a varying time of day, in one script call.
    samples = [day * 86400 + (day * 7919) % 86400 for day in range(0, 51500)]
    lua = (
        _LUA_RFC3339
        + """
local out = {}
for i = 1, #ARGV do out[i] = rfc3339(tonumber(ARGV[i])) .. 'Z' end
return out
"""
    )
    for start in range(0, len(samples), 5000):
        chunk = samples[start : start + 5000]
        assert redis.eval(lua, 0, *chunk) == [rfc3339_utc(ts) for ts in chunk]
