"""Whether a pid read from a pidfile is still a live redis-server process."""

from __future__ import annotations

import os


def redis_process_alive(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) process that looks like a redis-server.

    A pidfile outlives a crash and pids are reused after a reboot, so a live pid alone proves
    nothing. Where /proc is missing (macOS) a live pid is taken at its word.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, it is just not ours
    if not os.path.isdir("/proc/self"):
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            proc_stat = handle.read()
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().decode("utf-8", "replace")
    except OSError:
        return False
    comm, _, rest = proc_stat.partition("(")[2].rpartition(")")
    state = rest.split()[0] if rest.split() else "?"
    # Daemonized servers are re-parented to pid 1, which in a container may never reap them.
    if state in ("Z", "X"):
        return False
    return "redis" in comm or "redis" in cmdline
