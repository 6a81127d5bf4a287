"""How the embedded redis-server starts on its data folder: which binary (`server.json`), with what.

Redis 6 and 7 keep their AOF differently, and each ignores the other's: starting this folder with
the other release comes up empty (fencing tokens handed out again) or revives an older state
(fires re-run). So `server.json` records the binary, and a start with a binary of another release
line is refused with a sentence saying how to get out (see `choose_binary`). What it starts with
is the `redis.conf` that `write_conf` writes on every start.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.store.redisbin import (
    SERVER_ENV,
    find_redis_server,
    redis_servers_here,
    release_line,
    server_version,
)

log = logging.getLogger(__name__)

RECORD_NAME = "server.json"
# The persistence files under the names Redis defaults to (our redis.conf keeps the defaults).
AOF_FILE_NAME = "appendonly.aof"  # Redis 6 and earlier
AOF_DIR_NAME = "appendonlydir"  # Redis 7 and later
RDB_NAME = "dump.rdb"
# The release that moved the AOF from one file into a folder.
_AOF_DIR_MAJOR = 7


@dataclass(frozen=True)
class ServerBinary:
    """A redis-server and its release, as `server.json` records it."""

    path: str
    version: str


class IncompatibleDataError(RuntimeError):
    """The data folder holds data of a Redis release line the chosen binary would misread."""


def choose_binary(data_dir: str) -> ServerBinary:
    """The redis-server to start on `data_dir`, recorded in its `server.json`.

    Release lines (major.minor) are compared, not patch levels: the AOF layout and the RDB
    version change only with a minor release, while patch releases are the security fixes a
    distribution applies under us, and refusing those would stop the scheduler on every update.
    Raises IncompatibleDataError, naming both binaries and the ways out, when the folder holds
    data of another release line (per the record, or per its files when there is no record).
    Call it holding the folder's start lock (embedded.py): the record has one temporary name.
    """
    record = _read_record(data_dir)
    binary = _preferred_binary(record)
    if _holds_data(data_dir):
        if record is not None:
            problem = _record_conflict(data_dir, record, binary)
        else:
            problem = _layout_conflict(data_dir, binary)
        if problem is not None:
            raise IncompatibleDataError(problem)
    if binary != record:
        _write_record(data_dir, binary)
        log.info(
            "recorded redis-server %s (Redis %s) in %s",
            binary.path,
            binary.version,
            os.path.join(data_dir, RECORD_NAME),
        )
    return binary


def _preferred_binary(record: ServerBinary | None) -> ServerBinary:
    # The recorded binary beats the general rule while it still runs the recorded release line:
    # PATH may have changed since (a venv activated, Redis installed). An explicit
    # CRONLEASE_REDIS_SERVER still wins, so an operator can always say which one.
    if record is not None and not os.environ.get(SERVER_ENV) and _still_fits(record):
        return ServerBinary(record.path, server_version(record.path))
    path = find_redis_server()
    return ServerBinary(path, server_version(path))


def _still_fits(record: ServerBinary) -> bool:
    if not os.access(record.path, os.X_OK):
        return False
    try:
        return release_line(server_version(record.path)) == release_line(record.version)
    except RuntimeError:
        return False  # moved, broken or replaced by something that is not a redis-server


def _holds_data(data_dir: str) -> bool:
    names = (AOF_FILE_NAME, AOF_DIR_NAME, RDB_NAME)
    return any(os.path.lexists(os.path.join(data_dir, name)) for name in names)


def _record_conflict(data_dir: str, record: ServerBinary, binary: ServerBinary) -> str | None:
    wanted = release_line(record.version)
    if release_line(binary.version) == wanted:
        return None
    return (
        f"{data_dir} holds data written by Redis {record.version} ({record.path}), but the "
        f"redis-server chosen now is Redis {binary.version} ({binary.path}), and another "
        "release line may read those files differently or not at all and start from an empty "
        "or an older state; "
        f"install Redis {wanted} at {record.path} again or point {SERVER_ENV} at a Redis "
        f"{wanted} redis-server{_hint(lambda version: release_line(version) == wanted)}, "
        f"or move {data_dir} away to start empty"
    )


def _layout_conflict(data_dir: str, binary: ServerBinary) -> str | None:
    """For a folder without a record (an older cronlease): does its AOF layout fit `binary`?"""
    if os.path.isdir(os.path.join(data_dir, AOF_DIR_NAME)):
        layout, kind, fits = f"{AOF_DIR_NAME}/", f"Redis {_AOF_DIR_MAJOR} or later", _has_aof_dir
    elif os.path.exists(os.path.join(data_dir, AOF_FILE_NAME)):
        layout, kind, fits = AOF_FILE_NAME, f"Redis {_AOF_DIR_MAJOR - 1} or earlier", _has_aof_file
    else:
        return None  # an RDB alone: Redis refuses an RDB newer than itself, loudly
    if fits(binary.version):
        return None
    return (
        f"{data_dir} holds {layout}, which only {kind} writes, but the redis-server chosen now "
        f"is Redis {binary.version} ({binary.path}), which would not read it and would start "
        f"from an empty or an older state; point {SERVER_ENV} at a {kind} redis-server"
        f"{_hint(fits)}, or move {data_dir} away to start empty"
    )


def _has_aof_dir(version: str) -> bool:
    """Whether Redis `version` keeps its AOF in a folder (7 and later) rather than one file."""
    return int(version.split(".")[0]) >= _AOF_DIR_MAJOR


def _has_aof_file(version: str) -> bool:
    return not _has_aof_dir(version)


def _hint(fits: Callable[[str], bool]) -> str:
    """` (this machine has one: <path>, Redis <version>)` when one fits, else nothing."""
    for path in redis_servers_here():
        try:
            version = server_version(path)
        except RuntimeError:
            continue
        if fits(version):
            return f" (this machine has one: {path}, Redis {version})"
    return ""


def _read_record(data_dir: str) -> ServerBinary | None:
    path = os.path.join(data_dir, RECORD_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
        return ServerBinary(path=str(raw["path"]), version=str(raw["version"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        # Guessing past a damaged record could start the wrong release on the data.
        raise RuntimeError(
            f"cannot read {path} ({error!r}); repair it, or delete it to have the Redis "
            "release inferred from the data files"
        ) from None


def _write_record(data_dir: str, binary: ServerBinary) -> None:
    # Write-then-rename, so a crash leaves the old record or the new one, never half of one.
    # Callers hold the start lock, so one temporary name is enough.
    path = os.path.join(data_dir, RECORD_NAME)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({"path": binary.path, "version": binary.version}, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    folder = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself must reach the disk too
    finally:
        os.close(folder)


def write_conf(
    conf_path: str, data_dir: str, socket_path: str, pid_path: str, log_path: str
) -> None:
    """The redis.conf the embedded server starts with: daemonized, Unix socket only, AOF on."""
    settings = [
        ("daemonize", "yes"),
        ("port", "0"),  # no TCP at all: the socket's permissions are the access control
        ("unixsocket", _conf_quote(socket_path)),
        ("unixsocketperm", "700"),
        ("dir", _conf_quote(data_dir)),
        ("pidfile", _conf_quote(pid_path)),
        ("logfile", _conf_quote(log_path)),
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
    ]
    text = "# Written by cronlease on every start of the embedded Redis; edits are lost.\n"
    text += "".join(f"{key} {value}\n" for key, value in settings)
    with open(conf_path, "w", encoding="ascii") as handle:
        handle.write(text)


def _conf_quote(value: str) -> str:
    """A double-quoted redis.conf string, so paths with spaces or quotes stay one argument."""
    out = []
    for byte in os.fsencode(value):
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'
