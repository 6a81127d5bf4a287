"""Where the target tests find their real workers (installed by install_workers.py), or why not;
and how they start, wait for, read and stop one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.redis_server import RedisServer, wait_until
from tests.targets.install_workers import WORKERS, venv_root


def install_hint(kind: str) -> str:
    return f"`python tests/targets/install_workers.py {kind}` installs it (.ci/run does)"


def worker_dir(kind: str) -> Path:
    return WORKERS / kind


def venv_bin(kind: str, program: str) -> Path:
    """A program of the worker's own virtual environment; skips the test when it is absent or
    was installed from another requirements.txt than the one in the tree."""
    folder = venv_root() / kind
    path = folder / "bin" / program
    wanted = (WORKERS / kind / "requirements.txt").read_text()
    installed = folder / "installed.txt"
    if not path.exists() or not installed.exists() or installed.read_text() != wanted:
        pytest.skip(f"the {kind} worker is not installed: {install_hint(kind)}")
    return path


def system_program(kind: str, program: str) -> str:
    found = shutil.which(program)
    if found is None:
        pytest.skip(f"{program} is not installed: {install_hint(kind)}")
    return found


def node_modules(kind: str) -> Path:
    modules = WORKERS / kind / "node_modules"
    if not modules.is_dir():
        pytest.skip(f"the {kind} worker's node modules are not installed: {install_hint(kind)}")
    return modules


def url_with_db(server: RedisServer, db: int) -> str:
    """The server's URL on logical database `db`."""
    return f"{server.url.rsplit('/', 1)[0]}/{db}"


class RecordedWorker:
    """A real worker process whose jobs each append one line to `record`; `log` is its output."""

    def __init__(self, process: subprocess.Popen[bytes], record: Path, log: Path) -> None:
        self.process = process
        self.record = record
        self.log = log

    def raw_lines(self) -> list[str]:
        return self.record.read_text().splitlines() if self.record.exists() else []

    def reset(self) -> None:
        self.record.write_text("")

    def log_tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


def launch(
    command: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start a worker in its own process group (stop_group stops it and its children)."""
    with log.open("wb") as log_file:
        return subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def wait_ready(worker: RecordedWorker, marker: str, name: str, timeout_s: float = 20.0) -> None:
    """Until the worker's log shows `marker`; fails at once, with its log, if it exited."""

    def ready() -> bool:
        assert worker.process.poll() is None, f"{name} exited:\n{worker.log_tail()}"
        return marker in worker.log_tail()

    wait_until(ready, timeout_s, 0.05)


def stop_group(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """Warm shutdown (SIGTERM) of the process group launch started; SIGKILL after grace_s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
