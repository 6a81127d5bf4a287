"""Operating a running daemon: metrics, probes, reload. Real processes, real redis-server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis as redis_py
from prometheus_client.parser import text_string_to_metric_families

from tests.daemons import KEYS, Daemon, leader_of, wait_for_leader, wait_for_runs
from tests.redis_server import RedisServer, free_port, wait_until

TWO = """
schedules:
  alpha:
    every: 1s
    job: test.alpha
  beta:
    cron: "* * * * * *"
    job: test.beta
"""


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (name, sorted labels), parsed by prometheus-client."""
    status, text = get(port, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), float("nan"))


def occurrences(port: int, schedule: str, outcome: str, reason: str = "") -> float:
    return value(
        scrape(port),
        "cronlease_occurrences_total",
        schedule=schedule,
        outcome=outcome,
        reason=reason,
    )


def start(
    name: str, config: Path, server: RedisServer, tmp: Path, **kwargs: object
) -> tuple[Daemon, int]:
    port = free_port()
    extra = ["--metrics-port", str(port), *kwargs.pop("extra_args", ())]  # type: ignore[misc]
    daemon = Daemon(name, config, server.url, tmp, extra_args=extra, **kwargs)  # type: ignore[arg-type]
    wait_until(lambda: _answers(port), 10, 0.02)
    return daemon, port


def _answers(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] in (200, 503)
    except OSError:
        return False


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(TWO)
    return path


def test_leader_and_follower_metrics(
    redis_server: RedisServer, redis: redis_py.Redis, config_file: Path, tmp_path: Path
) -> None:
    first, first_port = start("m1", config_file, redis_server, tmp_path)
    second, second_port = start("m2", config_file, redis_server, tmp_path)
    try:
        leader = wait_for_leader(redis)
        ports = {"m1": first_port, "m2": second_port}
        leader_port = ports[leader]
        follower_port = ports["m2" if leader == "m1" else "m1"]
        wait_until(lambda: occurrences(leader_port, "alpha", "enqueued") >= 2, 10, 0.05)

        lead, follow = scrape(leader_port), scrape(follower_port)
        assert value(lead, "cronlease_leader") == 1 and value(follow, "cronlease_leader") == 0
        assert value(lead, "cronlease_leader_changes_total", event="elected") == 1
        assert value(lead, "cronlease_lease_renewals_total", result="ok") >= 1
        assert value(lead, "cronlease_enqueue_lag_seconds_count") >= 2
        assert value(lead, "cronlease_schedule_interval_seconds", schedule="alpha") == 1
        assert value(lead, "cronlease_schedule_next_fire_timestamp_seconds", schedule="alpha") > 0
        assert value(lead, "cronlease_schedule_last_fire_timestamp_seconds", schedule="beta") > 0
        # Followers do not export figures only a leader knows.
        assert not any(name.startswith("cronlease_schedule_next_fire") for name, _ in follow)
        # Labelled series exist at zero before anything happens.
        assert (
            value(
                follow, "cronlease_occurrences_total", schedule="alpha", outcome="fenced", reason=""
            )
            == 0
        )
        assert (
            value(
                follow,
                "cronlease_occurrences_total",
                schedule="alpha",
                outcome="skipped",
                reason="paused",
            )
            == 0
        )
        assert value(follow, "cronlease_redis_errors_total", kind="timeout") == 0
        # No _created series: prometheus-client would add one per counter by default.
        assert not any(name.endswith("_created") for name, _ in lead)
        assert value(lead, "cronlease_config_drift") == 0
        assert value(lead, "cronlease_config_last_reload_successful") == 1
        wait_until(
            lambda: value(scrape(leader_port), "cronlease_queue_length", queue="default") >= 1,
            10,
            0.1,
        )

        # The dedup path, through the real daemon: move alpha's cursor into the future.
        future = int(redis.time()[0]) + 3600
        redis.hset(KEYS.cursor, "alpha", future)
        wait_until(lambda: occurrences(leader_port, "alpha", "deduplicated") >= 2, 10, 0.05)

        # Paused: the enqueue script skips it and the leader counts why.
        redis.hdel(KEYS.cursor, "alpha")
        redis.sadd(KEYS.paused, "beta")
        wait_until(lambda: occurrences(leader_port, "beta", "skipped", "paused") >= 1, 10, 0.05)
        wait_until(
            lambda: value(scrape(leader_port), "cronlease_schedule_paused", schedule="beta") == 1,
            10,
            0.05,
        )

        status, body = get(follower_port, "/readyz")
        assert status == 200 and "follower" in body  # standby pods are ready too
        if shutil.which("promtool"):
            text = get(leader_port, "/metrics")[1]
            check = subprocess.run(
                ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
            )
            assert check.returncode == 0, check.stdout + check.stderr
    finally:
        first.kill()
        second.kill()


def test_a_fenced_write_is_counted(
    redis_server: RedisServer, redis: redis_py.Redis, config_file: Path, tmp_path: Path
) -> None:
    frozen, port = start(
        "frozen",
        config_file,
        redis_server,
        tmp_path,
        env={"CRONLEASE_FAILPOINTS": "before-enqueue=stop"},
    )
    other = None
    try:
        wait_for_leader(redis)
        wait_until(lambda: _state(frozen.pid) == "T", 10, 0.01)
        other = Daemon("other", config_file, redis_server.url, tmp_path)
        wait_for_leader(redis, timeout_s=5, other_than="frozen")
        frozen.signal(signal.SIGCONT)
        wait_until(lambda: frozen.logged("write FENCED"), 10, 0.02)
        samples = scrape(port)
        fenced = sum(
            v
            for (name, labels), v in samples.items()
            if name == "cronlease_occurrences_total" and ("outcome", "fenced") in labels
        )
        assert fenced >= 1
        assert value(samples, "cronlease_leader_changes_total", event="fenced") == 1
        assert value(samples, "cronlease_leader") == 0
    finally:
        frozen.kill()
        if other is not None:
            other.kill()


def test_healthz_fails_when_the_main_loop_is_wedged(
    redis_server: RedisServer, redis: redis_py.Redis, config_file: Path, tmp_path: Path
) -> None:
    daemon, port = start(
        "wedged",
        config_file,
        redis_server,
        tmp_path,
        env={"CRONLEASE_FAILPOINTS": "main-loop=hang@12"},
    )
    try:
        assert get(port, "/healthz")[0] == 200
        wait_until(lambda: get(port, "/healthz")[0] == 503, 20, 0.1)
        assert "stuck" in get(port, "/healthz")[1]
        assert get(port, "/metrics")[0] == 200  # the HTTP thread still answers
    finally:
        daemon.kill()


def test_an_invalid_reload_keeps_the_running_schedules(
    redis_server: RedisServer, redis: redis_py.Redis, config_file: Path, tmp_path: Path
) -> None:
    daemon, port = start("r", config_file, redis_server, tmp_path)
    try:
        wait_for_leader(redis)
        wait_for_runs(redis, 2, 10)
        config_file.write_text(
            TWO.replace("every: 1s", "every: 1 second").replace("beta:", "alpha:")
        )
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: daemon.logged("config reload FAILED"), 10, 0.05)
        log = daemon.log()
        assert "duplicate key 'alpha'" in log and "schedules.yaml:" in log
        samples = scrape(port)
        assert value(samples, "cronlease_config_reloads_total", result="failure") >= 1
        assert value(samples, "cronlease_config_last_reload_successful") == 0
        seen = int(redis.xlen(KEYS.queue("default")))
        wait_for_runs(redis, seen + 4, 10)  # still running the last good config
        assert daemon.alive()
    finally:
        daemon.kill()


def test_a_configmap_style_symlink_swap_is_picked_up(
    redis_server: RedisServer, redis: redis_py.Redis, tmp_path: Path
) -> None:
    # What the kubelet does: files live in a timestamped folder, `..data` points at it, and the
    # visible file is a symlink through `..data`. An update swaps `..data` atomically.
    mount = tmp_path / "config"
    (mount / "..v1").mkdir(parents=True)
    (mount / "..v1" / "schedules.yaml").write_text(TWO)
    os.symlink("..v1", mount / "..data")
    os.symlink("..data/schedules.yaml", mount / "schedules.yaml")
    daemon, port = start("cm", mount / "schedules.yaml", redis_server, tmp_path)
    try:
        wait_for_leader(redis)
        wait_until(lambda: redis.hexists(KEYS.cursor, "alpha"), 10, 0.05)
        beta_cursor = int(redis.hget(KEYS.cursor, "beta") or 0)

        updated = TWO.replace("alpha:", "gamma:").replace("test.alpha", "test.gamma")
        (mount / "..v2").mkdir()
        (mount / "..v2" / "schedules.yaml").write_text(updated)
        os.symlink("..v2", mount / "..data_tmp")
        os.rename(mount / "..data_tmp", mount / "..data")

        wait_until(lambda: daemon.logged("config reloaded"), 10, 0.05)
        wait_until(lambda: _schedules_in(redis) >= {"gamma"}, 10, 0.05)
        # Removed: stopped at once, cursor cleaned up. Changed or kept: cursor kept.
        wait_until(lambda: not redis.hexists(KEYS.cursor, "alpha"), 10, 0.05)
        assert int(redis.hget(KEYS.cursor, "beta") or 0) >= beta_cursor
        runs = redis.xrange(KEYS.queue("default"))
        first_gamma = min(int(f["fire_ts"]) for _, f in runs if f["schedule"] == "gamma")
        last_alpha = max(int(f["fire_ts"]) for _, f in runs if f["schedule"] == "alpha")
        count_before = len(runs)
        wait_for_runs(redis, count_before + 3, 10)
        later = redis.xrange(KEYS.queue("default"))[count_before:]
        assert all(f["schedule"] != "alpha" for _, f in later)
        assert first_gamma >= last_alpha - 1  # added: started from now, no back-fill
        assert value(scrape(port), "cronlease_config_reloads_total", result="success") == 1
        assert leader_of(redis) is not None
    finally:
        daemon.kill()


def _schedules_in(client: redis_py.Redis) -> set[str]:
    return {fields["schedule"] for _, fields in client.xrange(KEYS.queue("default"))}


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]
