"""Operator runs into a queue's target: `cronlease trigger`, `cronlease backfill` and the page's
"trigger now" for a schedule whose queue goes to RQ land in RQ's queue, in RQ's format, and a
REAL `rq worker` runs them (tests/targets/rqworker.py); never a cronlease stream nobody reads.

Also: a wrong-typed target key is one clear sentence and nothing written; a lease acquired
between the token's read and the write makes the write start again with the new token.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import signal
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from datetime import timezone
from pathlib import Path
from typing import Any, cast

import pytest
import redis as redis_py

from scheduler.cli.main import main
from scheduler.core.config import load_config
from scheduler.core.queues import QueueSpec
from scheduler.core.timefmt import parse_instant, rfc3339_utc
from scheduler.daemon.events import describe
from scheduler.ops.httpserver import Request
from scheduler.store.scripts import Notice
from scheduler.targets.encoding import Encoder, Length, Run, Writes
from scheduler.targets.operator import OperatorRefused, OperatorWriter
from scheduler.targets.registry import encoder_for
from scheduler.targets.rq import RqEncoder
from scheduler.targets.runid import decode_run_id
from scheduler.web.app import StatusApp
from tests.daemons import KEYS, Daemon, leader_of, wait_for_leader
from tests.redis_server import RedisServer, wait_until
from tests.targets.rqworker import Worker, start_rq_worker

JOB = "rqjobs.record"
OPERATOR = "operator-9"
ADMIN = "admin-token-1"
SCHEDULES = f"""
queues:
  ops: {{target: rq, name: operator}}
  broken: {{target: rq, name: broken}}
schedules:
  tick: {{every: 10s, job: {JOB}, queue: ops, args: {{n: 1}}}}
  stuck: {{every: 10s, job: {JOB}, queue: broken}}
"""
T0 = "2024-01-01T00:00:00Z"  # tick fires at :00 :10 :20 ...


def ts(text: str) -> int:
    return int(parse_instant(text, timezone.utc).timestamp())


@pytest.fixture(scope="module")
def rq_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """One real `rq worker` (pickle, db 0) on RQ's queue `operator` for the whole module."""
    folder = tmp_path_factory.mktemp("rq-operator")
    yield from start_rq_worker(redis_server, folder, 0, None, queues=("operator",))


@pytest.fixture
def worker(rq_worker: Worker, redis: redis_py.Redis) -> Worker:
    rq_worker.reset()
    return rq_worker


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    return path


def ctl(command: str, *args: str, url: str, config: Path) -> tuple[int, str, str]:
    """One `cronlease <command>` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [command, *args, "--config", str(config), "--redis-url", url]
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*argv, "--replica-id", OPERATOR])
    return code, out.getvalue(), err.getvalue()


def redis_now(client: redis_py.Redis) -> float:
    seconds, micros = client.time()
    return int(seconds) + int(micros) / 1e6


def notices(pubsub: Any, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def heard() -> bool:
        message = pubsub.get_message(timeout=0.05)
        if message is not None and message["type"] == "message":
            found.append(json.loads(message["data"]))
        return len(found) >= count

    wait_until(heard, 5, 0)
    return found


def written(client: redis_py.Redis) -> list[str]:
    """The keys an operator's RQ run writes (job hash, queue list, queue set) and cronlease's;
    not the worker's own bookkeeping (rq:worker:..., rq:clean_registries:..., heartbeats)."""
    patterns = ("rq:job:*", "rq:queue:*", "rq:queues", f"{KEYS.prefix}:*")
    return sorted(key for pattern in patterns for key in client.keys(pattern))


def no_stream_entries(client: redis_py.Redis) -> None:
    assert client.keys(f"{KEYS.prefix}:queue:*") == [], "nothing may go to a cronlease stream"


# -- trigger -----------------------------------------------------------------------------------


def test_trigger_into_rq_is_run_by_the_real_worker_with_the_manual_run_fields(
    worker: Worker, redis_server: RedisServer, redis: redis_py.Redis, config_file: Path
) -> None:
    redis.set(KEYS.epoch, 41)
    redis.hset(KEYS.cursor, "tick", 12345)
    events = redis.pubsub(ignore_subscribe_messages=True)
    events.subscribe(KEYS.events)
    before = redis_now(redis)
    code, out, err = ctl("trigger", "tick", url=redis_server.url, config=config_file)
    after = redis_now(redis)
    assert code == 0, err
    found = re.fullmatch(
        r"enqueued manual run (\S+) as job (\S+) of rq queue 'operator' \(token 41\)\n", out
    )
    assert found is not None, out
    run_id, job_id = found[1], found[2]
    assert re.fullmatch(r"tick@\S+Z#manual-[0-9a-f]{12}", run_id)
    assert decode_run_id(job_id) == run_id

    [line] = worker.wait_for(1)
    assert decode_run_id(line["id"]) == run_id and line["kwargs"] == {"n": 1}
    meta = line["meta"]
    assert (meta["trigger"], meta["token"], meta["replica"]) == ("manual", "41", OPERATOR)
    assert (meta["schedule"], meta["queue"]) == ("tick", "ops")
    fire_ts = int(meta["fire_ts"])
    assert int(before) <= fire_ts <= after and meta["fire_time"] == rfc3339_utc(fire_ts)
    enqueued = parse_instant(meta["enqueued_at"], timezone.utc).timestamp()
    assert before - 0.001 <= enqueued <= after and re.search(r"\.\d{3}Z$", meta["enqueued_at"])
    no_stream_entries(redis)
    assert redis.hgetall(KEYS.cursor) == {"tick": "12345"}, "the cursor is not touched"

    [notice] = notices(events, 1)
    assert notice == {
        "event": "manual",
        "run_id": run_id,
        "schedule": "tick",
        "queue": "ops",
        "target": "rq queue 'operator'",
        "job_id": job_id,
        "token": "41",
        "by": OPERATOR,
    }
    text, _ = describe(Notice("manual", {k: str(v) for k, v in notice.items() if k != "event"}))
    assert text == (
        f"manual run {run_id} enqueued by {OPERATOR} (job {job_id} of rq queue 'operator', "
        "token 41)"
    )

    # With a leader, its token.
    redis.set(KEYS.leader, "7:somebody", px=10_000)
    code, out, err = ctl("trigger", "tick", url=redis_server.url, config=config_file)
    assert code == 0 and out.endswith("(token 7)\n"), err
    assert worker.wait_for(2)[1]["meta"]["token"] == "7"


def test_the_pages_trigger_now_goes_into_the_target_and_the_worker_runs_it(
    worker: Worker, redis_server: RedisServer, redis: redis_py.Redis, config_file: Path
) -> None:
    config = load_config(str(config_file))
    app = StatusApp(
        lambda: redis,
        KEYS,
        lambda: config,
        config_path=str(config_file),
        lease_ttl_s=1.0,
        redis_url=redis_server.url,
        replica_id="web-test",
        admin_token=lambda: ADMIN,
        cache_s=0.0,
    )

    def post(name: str) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        reply = app(Request("POST", f"/api/schedules/{name}/trigger", "", headers, b""))
        assert reply is not None
        return reply.status, json.loads(reply.body)

    code, body = post("tick")
    assert code == 200 and body["ok"] is True, body
    assert body["target"] == "rq queue 'operator'" and body["token"] == "0"
    assert body["message"] == (
        f"enqueued manual run {body['run_id']} as job {body['job_id']} of rq queue 'operator'"
    )
    [line] = worker.wait_for(1)
    assert decode_run_id(line["id"]) == body["run_id"]
    assert (line["meta"]["trigger"], line["meta"]["replica"]) == ("manual", "web@web-test")
    no_stream_entries(redis)

    redis.set("rq:queue:broken", "not a list")
    code, body = post("stuck")
    assert code == 409 and "rq:queue:broken holds a string" in body["error"], body
    assert "nothing was written" in body["error"]
    assert redis.keys("rq:job:stuck*") == []


# -- backfill ----------------------------------------------------------------------------------


def test_backfill_into_rq_runs_each_fire_once_and_reports_those_already_there(
    worker: Worker, redis_server: RedisServer, redis: redis_py.Redis, config_file: Path
) -> None:
    url = redis_server.url
    events = redis.pubsub(ignore_subscribe_messages=True)
    events.subscribe(KEYS.events)
    first = ("--from", T0, "--to", "2024-01-01T00:00:30Z")
    ids = [f"tick@{rfc3339_utc(ts(T0) + 10 * i)}" for i in range(6)]

    code, out, err = ctl("backfill", "tick", *first, "--dry-run", url=url, config=config_file)
    assert code == 0, err
    assert "would enqueue 4 backfill runs of tick" in out and "into rq queue 'operator'" in out
    assert written(redis) == [], "a dry run writes nothing"

    redis.set(KEYS.epoch, 5)
    code, out, err = ctl("backfill", "tick", *first, url=url, config=config_file)
    assert code == 0, err
    assert out == (
        "enqueued 4 backfill runs of tick (2024-01-01T00:00:00Z .. 2024-01-01T00:00:30Z) into "
        f"rq queue 'operator' with token 5: {ids[0]} .. {ids[3]}\n"
    )
    lines = worker.wait_for(4)
    assert [decode_run_id(line["id"]) for line in lines] == ids[:4], "oldest first"
    for line in lines:
        assert (line["meta"]["trigger"], line["meta"]["token"]) == ("backfill", "5")
        assert line["meta"]["replica"] == OPERATOR and line["kwargs"] == {"n": 1}
        assert decode_run_id(line["id"]).endswith("@" + line["fire_time"])
    [notice] = notices(events, 1)
    assert (notice["runs"], notice["already"], notice["target"]) == (4, 0, "rq queue 'operator'")

    # Their jobs are still in RQ (finished, within result_ttl): a second, wider backfill writes
    # only the two new fires and says which four were already there.
    wider = ("--from", T0, "--to", "2024-01-01T00:00:50Z")
    code, out, err = ctl("backfill", "tick", *wider, url=url, config=config_file)
    assert code == 0, err
    assert out.splitlines() == [
        "enqueued 2 of 6 backfill runs of tick (2024-01-01T00:00:00Z .. 2024-01-01T00:00:50Z) "
        f"into rq queue 'operator' with token 5: {ids[4]} .. {ids[5]}",
        "4 already there (their job is still in rq queue 'operator'), not written again: "
        f"{ids[0]} .. {ids[3]}",
    ]
    lines = worker.wait_for(6)
    [notice] = notices(events, 1)
    assert (notice["runs"], notice["already"]) == (2, 4)
    text, _ = describe(Notice("backfill", {k: str(v) for k, v in notice.items()}))
    assert text.endswith(
        f"2 runs enqueued by {OPERATOR} into rq queue 'operator' (4 already there)"
    )

    code, out, err = ctl("backfill", "tick", *wider, "--json", url=url, config=config_file)
    assert code == 0, err
    rows = [json.loads(row) for row in out.splitlines()]
    assert [row["run_id"] for row in rows] == ids
    assert {row["result"] for row in rows} == {"already there"}
    assert {row["target"] for row in rows} == {"rq queue 'operator'"}
    assert [decode_run_id(row["job_id"]) for row in rows] == ids
    time.sleep(1.0)  # what a second delivery would need to show up
    executed = [decode_run_id(line["id"]) for line in worker.lines()]
    assert sorted(executed) == sorted(ids) and len(executed) == 6, "each fire ran once"
    no_stream_entries(redis)


def test_a_real_leader_logs_the_target_runs_and_its_token_rides_with_them(
    worker: Worker, redis_server: RedisServer, redis: redis_py.Redis, config_file: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    daemon = Daemon("leader-1", config_file, redis_server.url, tmp_path)
    try:
        wait_for_leader(redis)
        holder = leader_of(redis)
        assert holder is not None
        code, out, err = ctl("trigger", "tick", url=redis_server.url, config=config_file)
        assert code == 0 and out.endswith(f"(token {holder[0]})\n"), err
        run_id = out.split()[3]
        wait_until(lambda: daemon.logged(f"manual run {run_id} enqueued by {OPERATOR} (job "), 5)
        span = ("--from", T0, "--to", "2024-01-01T00:00:10Z")
        code, _, err = ctl("backfill", "tick", *span, url=redis_server.url, config=config_file)
        assert code == 0, err
        said = f"2 runs enqueued by {OPERATOR} into rq queue 'operator' (0 already there)"
        wait_until(lambda: daemon.logged(said), 5, 0.05)
        wait_until(lambda: {run_id, f"tick@{T0}"} <= set(worker.executed()), 15, 0.05)
        by_id = {decode_run_id(line["id"]): line["meta"] for line in worker.lines()}
        assert by_id[run_id]["token"] == by_id[f"tick@{T0}"]["token"] == str(holder[0])
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        daemon.kill()
    no_stream_entries(redis)


# -- refusals and the token race ---------------------------------------------------------------


def test_a_wrong_typed_target_key_is_a_clear_error_and_nothing_is_written(
    redis_server: RedisServer, redis: redis_py.Redis, config_file: Path
) -> None:
    redis.set("rq:queue:broken", "not a list")
    url = redis_server.url
    code, out, err = ctl("trigger", "stuck", url=url, config=config_file)
    assert (code, out) == (1, "")
    assert err == (
        "cronlease trigger: rq queue 'broken': the key rq:queue:broken holds a string, where rq "
        "writes a list (is another program using that key?); nothing was written\n"
    )
    span = ("--from", T0, "--to", "2024-01-01T00:01:00Z")
    code, out, err = ctl("backfill", "stuck", *span, url=url, config=config_file)
    assert (code, out) == (1, "") and err.startswith("cronlease backfill: rq queue 'broken': ")
    assert "of 7 runs were written" not in err, "refused in the first call: nothing to resume"
    # Nothing at all: no job hash, no queue-set member, no stream entry, the key as it was.
    assert written(redis) == ["rq:queue:broken"]
    assert redis.get("rq:queue:broken") == "not a list"


def _spec(config_file: Path) -> QueueSpec:
    """The `ops` queue, but into RQ's queue `race`, which the module's worker does not read:
    these tests look at what was written, not at what ran."""
    return replace(load_config(str(config_file)).queue("ops"), name="race")


class _Meddling:
    """An RQ encoder that calls `meddle` each time it encodes: another replica's move between
    the operator's read of the token and its write."""

    def __init__(self, spec: QueueSpec, meddle: Any) -> None:
        self.spec = spec
        self._inner = RqEncoder(spec)
        self._meddle = meddle

    def writes(self, run: Run) -> Writes:
        self._meddle()
        return self._inner.writes(run)

    def lengths(self) -> list[Length]:
        return list(self._inner.lengths())

    def job_id(self, run_id: str) -> str:
        return self._inner.job_id(run_id)


def test_a_lease_taken_between_the_read_and_the_write_is_the_token_the_run_carries(
    redis_server: RedisServer, redis: redis_py.Redis, config_file: Path
) -> None:
    config = load_config(str(config_file))
    moved: list[str] = []

    def new_leader() -> None:
        if not moved:  # once: the first attempt is refused, the second goes through
            redis.set(KEYS.epoch, 9)
            redis.set(KEYS.leader, "9:newcomer", px=10_000)
            moved.append("9")

    def make(spec: QueueSpec) -> Encoder:
        return cast(Encoder, _Meddling(spec, new_leader))

    writer = OperatorWriter(redis, KEYS, _spec(config_file), make_encoder=make)
    triggered = writer.trigger(config.by_name()["tick"], OPERATOR)
    assert triggered.token == "9"
    [job_id] = redis.lrange("rq:queue:race", 0, -1)
    assert job_id == triggered.job_id, "one run, written once"
    raw = redis_server.client(decode_responses=False)
    assert pickle.loads(raw.hget(f"rq:job:{job_id}", "meta"))["token"] == "9"

    # A lease that keeps changing hands: refused with a sentence, nothing written.
    redis.flushall()
    churn = OperatorWriter(
        redis,
        KEYS,
        _spec(config_file),
        make_encoder=lambda spec: cast(Encoder, _Meddling(spec, lambda: redis.incr(KEYS.epoch))),
    )
    with pytest.raises(OperatorRefused, match="changed hands 5 times"):
        churn.trigger(config.by_name()["tick"], OPERATOR)
    assert written(redis) == [KEYS.epoch]


def test_redis_cluster_and_relayed_targets_are_refused_before_anything_is_written(
    redis: redis_py.Redis, config_file: Path
) -> None:
    spec = _spec(config_file)
    with pytest.raises(OperatorRefused, match="cannot be written on Redis Cluster"):
        OperatorWriter(cast(redis_py.Redis, object()), KEYS, spec)
    relayed = QueueSpec(queue="billing", target="postgres", name="billing")
    with pytest.raises(OperatorRefused, match="postgres target"):
        OperatorWriter(redis, KEYS, relayed, make_encoder=encoder_for)
