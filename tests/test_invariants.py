"""The invariant checker on runs written with XADD by hand, on a real Redis."""

from __future__ import annotations

import json

import pytest
import redis as redis_py

from scheduler.core.config import parse_config
from scheduler.core.timefmt import rfc3339_utc, rfc3339_utc_ms
from scheduler.core.timeline import EveryTimeline
from tests.invariants import (
    Duplicate,
    Missing,
    OutOfOrder,
    Run,
    TokenRegression,
    check_invariants,
    expected_between,
    lag_stats,
    missing_between,
    read_runs,
)
from tests.redis_server import RedisServer

T0 = 1_795_312_800  # 2026-11-22T02:00:00Z, on every minute boundary


def add_run(
    client: redis_py.Redis,
    schedule: str,
    fire_ts: int,
    token: int = 1,
    *,
    queue: str = "default",
    trigger: str = "scheduled",
    namespace: str = "cronlease",
    lag_s: float = 0.004,
    run_id: str | None = None,
    overrides: dict[str, str] | None = None,
) -> str:
    """XADD one run as the enqueue script writes it; `overrides` replace fields, "" drops one."""
    fire_time = rfc3339_utc(fire_ts)
    if run_id is None:
        run_id = f"{schedule}@{fire_time}"
        if trigger == "manual":
            run_id += "#manual-3f9a"
    fields = {
        "run_id": run_id,
        "schedule": schedule,
        "job": f"jobs.{schedule}",
        "args": json.dumps({"n": fire_ts}),
        "queue": queue,
        "fire_time": fire_time,
        "fire_ts": str(fire_ts),
        "enqueued_at": rfc3339_utc_ms(fire_ts + lag_s),
        "trigger": trigger,
        "token": str(token),
        "replica": "host-1",
    }
    fields.update(overrides or {})
    fields = {name: value for name, value in fields.items() if value != ""}
    entry_id = client.xadd(f"{{{namespace}}}:queue:{queue}", fields)  # type: ignore[arg-type]
    return str(entry_id)


class TestReadRuns:
    def test_runs_come_back_parsed_in_stream_order_per_stream(self, redis: redis_py.Redis) -> None:
        first = add_run(redis, "beat", T0, token=3)
        add_run(redis, "report", T0, token=3, queue="reports")
        second = add_run(redis, "beat", T0 + 60, token=4, lag_s=1.5)

        runs = read_runs(redis)

        assert [(run.stream, run.entry_id) for run in runs] == [
            ("{cronlease}:queue:default", first),
            ("{cronlease}:queue:default", second),
            ("{cronlease}:queue:reports", runs[2].entry_id),
        ]
        beat = runs[1]
        assert beat.run_id == "beat@2026-11-22T02:01:00Z"
        assert beat.fire_ts == T0 + 60
        assert beat.token == 4
        assert beat.args == {"n": T0 + 60}
        assert beat.lag_s == pytest.approx(1.5, abs=0.001)
        assert beat.fields["replica"] == "host-1"

    def test_only_streams_of_the_namespace_are_read(self, redis: redis_py.Redis) -> None:
        add_run(redis, "beat", T0)
        add_run(redis, "beat", T0, namespace="other")
        redis.set("{cronlease}:queue:not-a-stream", "x")
        redis.hset("{cronlease}:cursor", "beat", str(T0))

        assert [run.stream for run in read_runs(redis)] == ["{cronlease}:queue:default"]
        assert [run.stream for run in read_runs(redis, "other")] == ["{other}:queue:default"]

    def test_long_streams_are_read_in_pages_and_bytes_clients_work(
        self, redis_server: RedisServer, redis: redis_py.Redis
    ) -> None:
        pipe = redis.pipeline(transaction=False)
        for index in range(2500):
            add_run(pipe, "beat", T0 + index)
        pipe.execute()
        raw = redis_server.client(decode_responses=False)

        runs = read_runs(raw)

        assert [run.fire_ts for run in runs] == [T0 + index for index in range(2500)]
        check_invariants(runs, timelines={"beat": EveryTimeline(1)}).assert_ok()

    def test_a_malformed_entry_is_named(self, redis: redis_py.Redis) -> None:
        entry_id = add_run(redis, "beat", T0, overrides={"token": ""})

        with pytest.raises(ValueError, match=f"{entry_id}: no field 'token'"):
            read_runs(redis)


class TestCheckInvariants:
    def test_clean_runs_pass(self, redis: redis_py.Redis) -> None:
        for index, fire in enumerate(range(T0, T0 + 600, 60)):
            add_run(redis, "beat", fire, token=1 + index // 5)
        add_run(redis, "report", T0, token=1, queue="reports", trigger="catchup")
        add_run(redis, "report", T0 + 300, token=2, queue="reports")
        # A manual run from a CLI with a lower token is not the scheduler's business by default.
        add_run(redis, "beat", T0 + 30, token=0, trigger="manual")

        report = check_invariants(
            read_runs(redis),
            timelines={"beat": EveryTimeline(60), "report": EveryTimeline(300)},
        )

        report.assert_ok()
        assert report.runs_checked == 12
        assert "all invariants hold" in report.summary()

    def test_a_run_enqueued_twice_is_a_duplicate(self, redis: redis_py.Redis) -> None:
        first = add_run(redis, "beat", T0, token=1)
        add_run(redis, "beat", T0 + 60, token=1)
        again = add_run(redis, "beat", T0, token=2)

        report = check_invariants(read_runs(redis))

        stream = "{cronlease}:queue:default"
        assert report.duplicates == [
            Duplicate("beat", T0, (f"{stream} {first}", f"{stream} {again}"))
        ]
        with pytest.raises(AssertionError, match="beat@2026-11-22T02:00:00Z enqueued 2 times"):
            report.assert_ok()

    def test_the_same_fire_in_two_queues_is_a_duplicate(self, redis: redis_py.Redis) -> None:
        add_run(redis, "beat", T0, queue="a")
        add_run(redis, "beat", T0, queue="b")

        report = check_invariants(read_runs(redis))

        assert [(d.schedule, d.fire_ts, len(d.where)) for d in report.duplicates] == [
            ("beat", T0, 2)
        ]

    def test_a_gap_between_delivered_fires_is_missing(self, redis: redis_py.Redis) -> None:
        for fire in (T0, T0 + 60, T0 + 180, T0 + 240):
            add_run(redis, "beat", fire)
        runs = read_runs(redis)
        expected = {"beat": list(range(T0 - 600, T0 + 1200, 60))}

        by_list = check_invariants(runs, expected_fires=expected)
        by_timeline = check_invariants(runs, timelines={"beat": EveryTimeline(60)})

        # Fires before the first and after the last delivered one are not the checker's call.
        assert by_list.missing == by_timeline.missing == [Missing("beat", T0 + 120)]
        assert missing_between(runs, {"beat": EveryTimeline(60)}) == {"beat": [T0 + 120]}
        with pytest.raises(AssertionError, match=r"beat@2026-11-22T02:02:00Z \(\d+\) never"):
            by_list.assert_ok()

    def test_a_fire_off_the_timeline_is_unexpected(self, redis: redis_py.Redis) -> None:
        for fire in (T0, T0 + 60, T0 + 90, T0 + 120):
            add_run(redis, "beat", fire)

        report = check_invariants(read_runs(redis), timelines={"beat": EveryTimeline(60)})

        assert [(u.schedule, u.fire_ts) for u in report.unexpected] == [("beat", T0 + 90)]
        assert not report.missing

    def test_a_cron_schedule_from_a_config_supplies_its_timeline(
        self, redis: redis_py.Redis
    ) -> None:
        config = parse_config(
            "schedules:\n  nightly:\n    cron: '0 3 * * *'\n    timezone: Europe/Berlin\n"
            "    job: reports.nightly\n"
        )
        timelines = {schedule.name: schedule.timeline for schedule in config.schedules}
        fires = timelines["nightly"].upcoming(T0, 4)
        for fire in (fires[0], fires[1], fires[3]):
            add_run(redis, "nightly", fire)

        runs = read_runs(redis)

        assert expected_between(runs, timelines) == {"nightly": fires}
        assert check_invariants(runs, timelines=timelines).missing == [Missing("nightly", fires[2])]

    def test_a_decreasing_token_in_one_stream_is_a_fencing_breach(
        self, redis: redis_py.Redis
    ) -> None:
        add_run(redis, "beat", T0, token=5)
        high = add_run(redis, "beat", T0 + 60, token=7)
        low = add_run(redis, "report", T0 + 60, token=6)
        add_run(redis, "beat", T0 + 120, token=7)
        add_run(redis, "other", T0, token=1, queue="elsewhere")  # another stream: no order

        report = check_invariants(read_runs(redis))

        stream = "{cronlease}:queue:default"
        assert report.token_regressions == [
            TokenRegression(f"{stream} {low}", 6, f"{stream} {high}", 7)
        ]
        with pytest.raises(AssertionError, match="decreasing fencing tokens"):
            report.assert_ok()

    def test_an_earlier_fire_after_a_later_one_is_out_of_order(self, redis: redis_py.Redis) -> None:
        add_run(redis, "beat", T0 + 60)
        late = add_run(redis, "beat", T0)

        report = check_invariants(read_runs(redis))

        assert report.out_of_order == [
            OutOfOrder("beat", f"{{cronlease}}:queue:default {late}", T0, T0 + 60)
        ]

    def test_fields_that_disagree_are_inconsistent(self, redis: redis_py.Redis) -> None:
        add_run(redis, "beat", T0, run_id="beat@2026-11-22T02:00:01Z")
        add_run(redis, "beat", T0 + 60, run_id="x", overrides={"fire_time": "2026-11-22T03:01:00Z"})
        add_run(redis, "beat", T0 + 120, trigger="sometimes", overrides={"queue": "a"})

        report = check_invariants(read_runs(redis))

        messages = [problem.message for problem in report.inconsistent]
        assert len(messages) == 5, messages
        assert "run_id 'beat@2026-11-22T02:00:01Z' is not 'beat@2026-11-22T02:00:00Z'" in messages
        assert any(message.startswith("fire_time '2026-11-22T03:01:00Z'") for message in messages)
        assert any(message.startswith("trigger 'sometimes'") for message in messages)
        assert any(message.startswith("queue 'a'") for message in messages)

    def test_manual_runs_are_checked_only_when_asked(self, redis: redis_py.Redis) -> None:
        add_run(redis, "beat", T0, token=2)
        add_run(redis, "beat", T0, token=1, trigger="manual", run_id="beat@2026-11-22T02:00:00Z#m")

        assert check_invariants(read_runs(redis)).ok
        report = check_invariants(read_runs(redis), ignore_manual=False)

        # Not a duplicate (manual runs are outside the cursor), but a lower token and a bad id.
        assert not report.duplicates
        assert len(report.token_regressions) == 1
        assert [problem.message for problem in report.inconsistent] == [
            "manual run_id 'beat@2026-11-22T02:00:00Z#m' is not "
            "beat@2026-11-22T02:00:00Z#manual-<random>"
        ]


class TestLagStats:
    def test_percentiles_of_enqueue_lag(self, redis: redis_py.Redis) -> None:
        for index in range(100):
            add_run(redis, "beat", T0 + index, lag_s=(index + 1) / 100)
        add_run(redis, "beat", T0 + 500, trigger="manual", lag_s=99.0)

        stats = lag_stats(read_runs(redis))

        assert stats.count == 100
        # enqueued_at carries milliseconds, truncated: allow one.
        assert stats.p50_s == pytest.approx(0.50, abs=0.0015)
        assert stats.p99_s == pytest.approx(0.99, abs=0.0015)
        assert stats.max_s == pytest.approx(1.00, abs=0.0015)

    def test_no_runs_is_an_error_not_a_zero(self) -> None:
        with pytest.raises(ValueError, match="no runs"):
            lag_stats([])


def test_runs_are_values() -> None:
    fields = {
        "run_id": "beat@2026-11-22T02:00:00Z",
        "schedule": "beat",
        "job": "j",
        "args": "{}",
        "queue": "default",
        "fire_time": "2026-11-22T02:00:00Z",
        "fire_ts": str(T0),
        "enqueued_at": "2026-11-22T02:00:00.004Z",
        "trigger": "scheduled",
        "token": "1",
        "replica": "r",
    }
    run = Run.from_entry("{cronlease}:queue:default", "1-0", fields)
    assert run == Run.from_entry("{cronlease}:queue:default", "1-0", dict(fields))
    assert len({run, Run.from_entry("{cronlease}:queue:default", "1-0", fields)}) == 1
