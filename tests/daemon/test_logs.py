"""What the logs say in normal operation, read from real `cronlease run` processes on a real
redis-server (leases of 1 s; every wait is a poll with a deadline): whom followers follow, what
the leader is told by operators, and the leader's summary of its term."""

from __future__ import annotations

import io
import re
import signal
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import redis

from scheduler.cli.control import announce_backfill
from scheduler.cli.main import main
from scheduler.store.scripts import Scripts
from tests.daemons import KEYS, Daemon, leader_of, wait_for_leader, wait_for_runs
from tests.invariants import read_runs
from tests.redis_server import RedisServer, wait_until

SCHEDULES = """
schedules:
  beat:
    every: 1s
    job: test.beat
  cron-beat:
    cron: "* * * * * *"
    job: test.cron
    queue: other
"""
OPERATOR = "operator-9"
SUMMARY = re.compile(
    r"leader summary, last \S+: enqueued=(\d+) caught_up=(\d+) deduplicated=(\d+) "
    r"misfired=(\d+) skipped=(\d+) fenced=(\d+) refused=(\d+)"
)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    return path


def ctl(command: str, *args: str, url: str, config: Path) -> str:
    """One operator command in this process; its stdout (it must succeed)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [command, *args, "--config", str(config), "--redis-url", url, "--replica-id", OPERATOR]
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    assert code == 0, err.getvalue()
    return out.getvalue()


def token_of(client: redis.Redis) -> int:
    holder = leader_of(client)
    assert holder is not None
    return holder[0]


def test_followers_name_their_leader_and_the_leader_says_what_operators_did(
    redis_server: RedisServer, redis: redis.Redis, config_file: Path, tmp_path: Path
) -> None:
    url = redis_server.url
    first = Daemon("r1", config_file, url, tmp_path)
    daemons = {"r1": first}
    try:
        assert wait_for_leader(redis) == "r1"
        token = token_of(redis)
        daemons |= {rid: Daemon(rid, config_file, url, tmp_path) for rid in ("r2", "r3")}
        followed = f"following r1 (token {token})"
        wait_until(lambda: daemons["r2"].logged(followed) and daemons["r3"].logged(followed), 10)
        wait_for_runs(redis, 3, 10)

        ctl("pause", "beat", url=url, config=config_file)
        wait_until(lambda: first.logged("paused: beat schedule=beat"), 5, 0.02)
        ctl("resume", "beat", url=url, config=config_file)
        wait_until(lambda: first.logged("resumed: beat schedule=beat"), 5, 0.02)

        out = ctl("trigger", "beat", url=url, config=config_file)
        run_id = re.search(r"enqueued manual run (\S+) ", out)
        assert run_id is not None, out
        said = f"manual run {run_id[1]} enqueued by {OPERATOR} (entry "
        wait_until(lambda: first.logged(said), 5, 0.02)

        announce_backfill(Scripts(redis, KEYS), "beat", 1_700_000_000, 1_700_000_600, 11, OPERATOR)
        said = "backfill of beat (2023-11-14T22:13:20Z .. 2023-11-14T22:23:20Z): 11 runs "
        wait_until(lambda: first.logged(said + f"enqueued by {OPERATOR}"), 5, 0.02)

        # Paused when the leader stops: the next one says so when it takes over.
        ctl("pause", "beat", url=url, config=config_file)
        wait_until(lambda: first.log().count("paused: beat schedule=beat") == 2, 5, 0.02)
        first.signal(signal.SIGTERM)
        assert first.wait() == 0
        new = wait_for_leader(redis, timeout_s=5, other_than="r1")
        new_token = token_of(redis)
        other = daemons["r3" if new == "r2" else "r2"]
        wait_until(lambda: other.logged(f"following {new} (token {new_token})"), 10, 0.02)
        told = "leading with 1 paused schedule(s), their fires are skipped: beat"
        wait_until(lambda: daemons[new].logged(told), 5, 0.02)

        # The stopped leader's last summary line counts exactly what it wrote.
        log = first.log()
        lines = SUMMARY.findall(log)
        assert re.search(SUMMARY.pattern + r" \(stopping\)", log), log
        enqueued, caught_up, deduplicated, misfired, _, fenced, refused = (
            sum(int(line[i]) for line in lines) for i in range(7)
        )
        mine = [r for r in read_runs(redis) if r.replica == "r1"]
        assert enqueued == sum(r.trigger == "scheduled" for r in mine) > 0
        assert caught_up == sum(r.trigger == "catchup" for r in mine)
        assert (deduplicated, misfired, fenced, refused) == (0, 0, 0, 0)

        # Once per leader, not once per heartbeat; notices only in the leader's log.
        assert other.log().count("following r1 ") == 1
        for rid in ("r2", "r3"):
            assert not daemons[rid].logged("manual run ")
            assert not daemons[rid].logged("resumed: ")
    finally:
        for daemon in daemons.values():
            daemon.kill()
