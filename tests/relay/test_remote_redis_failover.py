"""RQ on ANOTHER Redis instance through the relay, end to end: three replicas, every-second
schedules, the leader SIGKILLed twice and the other Redis stopped and restarted once
(tests/targets/harness.py); what a REAL `rq worker` on that Redis executed holds every handled
fire exactly once: the relay's re-deliveries are absorbed by the dedup keys of
store/lua/remote.py.

The other Redis keeps an AOF (fsync always), so its queue, job hashes and dedup keys survive the
restart as a production Redis's would. The worker runs supervised (restarted when it exits), as in
production: `rq worker` reconnects while it waits for a job but quits on a connection lost
anywhere else, so a restart of its Redis ends it now and then (CI saw it). The queue's url is
`${CRONLEASE_TEST_RQ_URL}`, filled from the daemons' environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.targets.relay.remote_redis import DEDUP_PREFIX
from tests.redis_server import RedisServer
from tests.targets.harness import prove_exactly_once_through_failover
from tests.targets.rqworker import Worker, start_rq_worker

URL_VARIABLE = "CRONLEASE_TEST_RQ_URL"


@pytest.fixture
def other_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "other-redis", appendonly=True).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def rq_worker(other_redis: RedisServer, tmp_path: Path) -> Iterator[Worker]:
    folder = tmp_path / "rq"
    folder.mkdir()
    yield from start_rq_worker(other_redis, folder, 0, None, supervised=True)


def test_exactly_once_through_failover_and_a_restart_of_the_other_redis(
    rq_worker: Worker,
    other_redis: RedisServer,
    redis: Any,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    assert other_redis.port != redis_server.port
    proof = prove_exactly_once_through_failover(
        redis_server,
        tmp_path,
        f"target: rq\nurl: ${{{URL_VARIABLE}}}\n",
        "rqjobs.record",
        rq_worker.executed,
        outage=(other_redis.stop, other_redis.start),
        env={URL_VARIABLE: other_redis.url},
        worker_log=rq_worker.log_tail,
    )
    assert len(proof.expected) >= 12
    for line in rq_worker.lines():
        assert line["kwargs"] == {"n": 1} and line["meta"]["queue"] == "jobs"
    # Every run executed has its dedup key on the other Redis, and none is on the scheduler's.
    target = other_redis.client()
    assert all(target.exists(DEDUP_PREFIX + run) for run in proof.executed)
    assert not redis_server.client().keys(f"{DEDUP_PREFIX}*")
    assert not redis_server.client().keys("rq:*")
    logs = "".join(path.read_text(errors="replace") for path in proof.log_dir.glob("*.log"))
    assert "could not take" in logs  # the relay said the target was out, loudly


def test_a_leader_on_the_default_lease_rides_out_a_restart_of_the_other_redis(
    rq_worker: Worker,
    other_redis: RedisServer,
    redis: Any,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """The target's outage does not touch the lease: under the default 10 s lease the same
    leader keeps leading through it, its relay retries, and every fire runs exactly once."""
    proof = prove_exactly_once_through_failover(
        redis_server,
        tmp_path,
        f"target: rq\nurl: ${{{URL_VARIABLE}}}\n",
        "rqjobs.record",
        rq_worker.executed,
        kills=0,
        outage=(other_redis.stop, other_redis.start),
        env={URL_VARIABLE: other_redis.url},
        worker_log=rq_worker.log_tail,
        ttl_s=10.0,
    )
    assert len(set(proof.leaders)) == 1, proof.leaders  # one leader, one token, throughout
    logs = "".join(path.read_text(errors="replace") for path in proof.log_dir.glob("*.log"))
    assert "could not take" in logs  # the relay said the target was out, loudly
