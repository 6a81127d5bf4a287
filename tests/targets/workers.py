"""Where the target tests find their real workers (installed by install_workers.py), or why not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
