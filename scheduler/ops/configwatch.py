"""Notices when the schedules file changes: an edit in place, a replace, or a Kubernetes
ConfigMap update (which swaps the `..data` symlink in the mounted folder and never writes the
file the path names). Polled from the main loop; SIGHUP asks for a reload directly."""

from __future__ import annotations

import os

Signature = tuple[str, int, int, int] | None


def signature(path: str) -> Signature:
    """What changes when the file's content may have: resolved target, inode, size, mtime."""
    try:
        target = os.path.realpath(path)
        stat = os.stat(target)
    except OSError:
        return None
    return (target, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class ConfigWatch:
    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        self.path = path
        self.interval_s = interval_s
        self._seen = signature(path)
        self._next_check_mono = 0.0

    def changed(self, now_mono: float) -> bool:
        """True once per observed change; stats the file at most every `interval_s`."""
        if now_mono < self._next_check_mono:
            return False
        self._next_check_mono = now_mono + self.interval_s
        current = signature(self.path)
        if current == self._seen or current is None:
            # A vanished file (mid-swap) is not a change yet; the next look decides.
            return False
        self._seen = current
        return True
