"""`cronlease worker` as a black box: real redis-server, real worker processes, real signals."""

from __future__ import annotations

import itertools
import json
import signal
from pathlib import Path

import redis as redis_py

from scheduler.worker.policy import backoff_bound_s
from tests.redis_server import RedisServer, wait_until
from tests.worker.workers import KEYS, WorkerProcess, cli, enqueue, events

# What the promotion of a due retry may add to its delay: the worker polls its own retries when
# they are due, and a read blocks at most 0.5 s.
PROMOTION_SLACK_S = 0.6


def ended(client: redis_py.Redis, run_id: str) -> int:
    return sum(1 for e in events(client, "end") if e["run_id"] == run_id)


def test_a_job_that_fails_twice_succeeds_on_its_third_attempt_within_the_backoff_bounds(
    redis: redis_py.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    run_id = enqueue(redis, "t.flaky", {"fails": 2})
    worker = WorkerProcess("w1", redis_server.url, tmp_path)
    try:
        wait_until(lambda: ended(redis, run_id) == 1, 10)
        starts = [e for e in events(redis, "start") if e["run_id"] == run_id]
        assert [e["attempt"] for e in starts] == [1, 2, 3]
        for failed, (before, after) in enumerate(itertools.pairwise(starts), 1):
            # t.flaky: backoff_base 0.3 s, cap 0.5 s: waits of at most 0.3 s, then 0.5 s.
            bound = backoff_bound_s(failed, 0.3, 0.5)
            assert 0 <= after["t"] - before["t"] <= bound + PROMOTION_SLACK_S
        assert redis.exists(KEYS.succeeded(run_id))
        assert redis.zcard(KEYS.retries("default")) == 0
        assert redis.xlen(KEYS.dead_letters("default")) == 0
    finally:
        worker.kill()


def test_a_job_that_always_fails_is_dead_after_its_attempts_and_replayed_from_the_cli(
    redis: redis_py.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    run_id = enqueue(redis, "t.always")
    worker = WorkerProcess("w1", redis_server.url, tmp_path)
    try:
        wait_until(lambda: redis.xlen(KEYS.dead_letters("default")) == 1, 10)
        assert [e["attempt"] for e in events(redis, "start")] == [1, 2, 3]  # retries=2
        listed = cli(redis_server.url, "dlq", "list", "default", "--json")
        assert listed.returncode == 0, listed.stderr
        (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
        assert letter["run_id"] == run_id
        assert (letter["attempts"], letter["reason"]) == ("3", "retries_exhausted")
        assert letter["error_class"] == "RuntimeError"
        assert letter["error_message"] == "this job always fails"
        assert "raise RuntimeError" in letter["traceback"]
        assert letter["first_failed_at"] <= letter["last_failed_at"]
        table = cli(redis_server.url, "dlq", "list", "default")
        assert run_id in table.stdout and "retries_exhausted" in table.stdout

        replayed = cli(redis_server.url, "dlq", "replay", "default", letter["id"])
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1 dead run" in replayed.stdout
        # Back as a first attempt: three more attempts, then dead again.
        wait_until(lambda: len(events(redis, "start")) == 6, 10)
        assert [e["attempt"] for e in events(redis, "start")][3:] == [1, 2, 3]
        wait_until(lambda: redis.xlen(KEYS.dead_letters("default")) == 1, 5)
        unknown = cli(redis_server.url, "dlq", "replay", "default", "1-1")
        assert unknown.returncode == 2 and "1-1" in unknown.stdout
        purged = cli(redis_server.url, "dlq", "purge", "default", "--older-than", "1h")
        assert "purged 0 dead runs" in purged.stdout
        purged = cli(redis_server.url, "dlq", "purge", "default")
        assert "purged 1 dead run " in purged.stdout
        assert redis.xlen(KEYS.dead_letters("default")) == 0
    finally:
        worker.kill()


def test_give_up_errors_unknown_jobs_and_timeouts_go_to_the_dead_letters(
    redis: redis_py.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    config = tmp_path / "schedules.yaml"
    config.write_text(
        "schedules:\n"
        "  known:\n    every: 1h\n    job: t.ok\n"
        "  mystery:\n    every: 1h\n    job: reports.nightly\n"
    )
    invalid = enqueue(redis, "t.invalid")
    unknown = enqueue(redis, "reports.nightly")
    slow = enqueue(redis, "t.timeout")
    summed = enqueue(redis, "t.positional", [2, 3])
    worker = WorkerProcess("w1", redis_server.url, tmp_path, config=config)
    try:
        wait_until(lambda: redis.xlen(KEYS.dead_letters("default")) == 3, 10)
        letters = {f["run_id"]: f for _, f in redis.xrange(KEYS.dead_letters("default"))}
        assert (letters[invalid]["reason"], letters[invalid]["attempts"]) == ("give_up", "1")
        assert letters[invalid]["error_class"] == "ValueError"
        assert letters[unknown]["reason"] == "unknown_job"
        assert "'reports.nightly'" in letters[unknown]["error_message"]
        assert (letters[slow]["reason"], letters[slow]["attempts"]) == ("retries_exhausted", "2")
        assert "timeout" in letters[slow]["error_message"]
        assert [e["total"] for e in events(redis, "end") if e["run_id"] == summed] == [5]
        assert "cannot run 1 job(s)" in worker.log()
        assert "reports.nightly (queue default)" in worker.log()
    finally:
        worker.kill()


def test_a_killed_workers_run_is_run_by_another_and_the_success_record_stops_a_third_run(
    redis: redis_py.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    run_id = enqueue(redis, "t.wait", {"key": "release"})
    first = WorkerProcess("w1", redis_server.url, tmp_path)
    second: WorkerProcess | None = None
    try:
        wait_until(lambda: len(events(redis, "start")) == 1, 10)
        first.kill()  # SIGKILL mid-job: its run stays pending under w1
        redis.set("release", "1")
        second = WorkerProcess("w2", redis_server.url, tmp_path)
        wait_until(lambda: ended(redis, run_id) == 1, 10)
        starts = events(redis, "start")
        assert [e["pid"] for e in starts] == [first.pid, second.pid]
        assert "claimed 1 run(s)" in second.log()
        # A redelivery of the same run id (a backfill, say) is acknowledged without running.
        enqueue(redis, "t.wait", {"key": "release"}, run_id=run_id, trigger="backfill")

        def acknowledged() -> bool:
            groups = redis.xinfo_groups(KEYS.queue("default"))
            return groups[0]["pending"] == 0 and groups[0]["lag"] == 0

        wait_until(acknowledged, 5)
        assert len(events(redis, "start")) == 2 and ended(redis, run_id) == 1
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_sigterm_lets_running_jobs_finish_reads_nothing_new_and_exits_0(
    redis: redis_py.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    running = [enqueue(redis, "t.sleep", {"seconds": 0.7}) for _ in range(2)]
    worker = WorkerProcess("w1", redis_server.url, tmp_path, "--concurrency", "2")
    try:
        wait_until(lambda: len(events(redis, "start")) == 2, 10)
        worker.signal(signal.SIGTERM)
        later = enqueue(redis, "t.ok")
        assert worker.wait(10) == 0
        assert sorted(e["run_id"] for e in events(redis, "end")) == sorted(running)
        assert all(redis.exists(KEYS.succeeded(run_id)) for run_id in running)
        assert not redis.exists(KEYS.succeeded(later)), "read nothing after SIGTERM"
    finally:
        worker.kill()


def test_a_job_still_running_after_the_grace_period_is_handed_to_another_worker_at_once(
    redis: redis_py.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    run_id = enqueue(redis, "t.wait", {"key": "release"})
    # A visibility timeout far longer than the test: only the hand-over lets w2 take it.
    slow = ("--visibility-timeout", "60s")
    first = WorkerProcess("w1", redis_server.url, tmp_path, *slow, "--grace", "0.2")
    second: WorkerProcess | None = None
    try:
        wait_until(lambda: len(events(redis, "start")) == 1, 10)
        first.signal(signal.SIGTERM)
        assert first.wait(10) == 0
        assert "left for another worker" in first.log()
        redis.set("release", "1")
        second = WorkerProcess("w2", redis_server.url, tmp_path, *slow)
        wait_until(lambda: redis.exists(KEYS.succeeded(run_id)), 10)
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_queues_are_read_in_strict_priority_order_under_a_backlog(
    redis: redis_py.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    for queue in ("low", "default", "critical"):
        for _ in range(10):
            enqueue(redis, "t.ok", queue=queue)
    worker = WorkerProcess(
        "w1", redis_server.url, tmp_path, "--queues", "critical,default,low", "--concurrency", "1"
    )
    try:
        wait_until(lambda: len(events(redis, "end")) == 30, 15)
        order = [e["queue"] for e in events(redis, "start")]
        assert order == ["critical"] * 10 + ["default"] * 10 + ["low"] * 10
    finally:
        worker.kill()


def test_metrics_are_served_under_their_names(
    redis: redis_py.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    import urllib.request

    from tests.redis_server import free_port

    port = free_port()
    enqueue(redis, "t.ok")
    enqueue(redis, "t.invalid")
    worker = WorkerProcess(
        "w1", redis_server.url, tmp_path, "--metrics-port", str(port), "--metrics-host", "127.0.0.1"
    )
    try:
        wait_until(lambda: redis.xlen(KEYS.dead_letters("default")) == 1, 10)

        def scrape() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    return str(r.read().decode())
            except OSError:
                return ""

        def shows_the_dead_letter() -> bool:
            return 'cronlease_worker_dead_letters{queue="default"} 1.0' in scrape()

        wait_until(shows_the_dead_letter, 10, 0.1)
        text = scrape()
        assert (
            'cronlease_worker_runs_total{job="t.ok",outcome="succeeded",queue="default"} 1.0'
            in text
        )
        assert (
            'cronlease_worker_runs_total{job="t.invalid",outcome="dead",queue="default"} 1.0'
            in text
        )
        for name in (
            "cronlease_worker_run_duration_seconds_bucket",
            'cronlease_worker_in_flight{queue="default"}',
            'cronlease_worker_retries_waiting{queue="default"}',
            'cronlease_worker_oldest_waiting_age_seconds{queue="default"}',
            "cronlease_worker_up 1.0",
        ):
            assert name in text, name
    finally:
        worker.kill()
