"""The replica's heartbeat: it says it is alive (role, config hash, version, host), and learns the
leader's config hash (drift), the paused schedules, and, when leading, the queues' figures.

What it learns is also said once in the log: a follower names the leader it follows (when it
first sees one and when that changes, not on every beat), a leader names the schedules paused
or resumed while it leads.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time

from scheduler import __version__
from scheduler.core.schedule import Config
from scheduler.ops.metrics import Metrics
from scheduler.store.lease import LeaseTiming
from scheduler.store.queuestats import QueueStats
from scheduler.store.scripts import Scripts

log = logging.getLogger("scheduler.daemon")

# Replicas silent for this many lease TTLs drop out of the heartbeat set.
FORGET_REPLICA_TTLS = 30
# Pause changes named one line each up to this many at once; a bulk change is one line.
PAUSE_LINES_MAX = 10


class Heartbeat:
    def __init__(
        self,
        scripts: Scripts,
        queue_stats: QueueStats,
        metrics: Metrics,
        replica_id: str,
        timing: LeaseTiming,
    ) -> None:
        self._scripts = scripts
        self._queue_stats = queue_stats
        self._metrics = metrics
        self._replica_id = replica_id
        self._timing = timing
        self._started_at = time.time()
        self._next_mono = 0.0
        self.paused: frozenset[str] = frozenset()
        self._followed = ""  # the leader value last logged as followed
        self._announced: frozenset[str] | None = None  # paused set as this leader logged it

    def soon(self) -> None:
        """Beat on the next turn (a new leader, a new config)."""
        self._next_mono = 0.0

    def due_in_s(self) -> float:
        return self._next_mono - time.monotonic()

    def follow(self) -> None:
        """No longer leading: queue figures are a leader's to show."""
        self._queue_stats.reset()
        self._metrics.clear_queues()
        self._announced = None

    def beat_if_due(self, config: Config, lease_value: str) -> None:
        """One heartbeat every renewal interval; `lease_value` is '' when following."""
        now_mono = time.monotonic()
        if now_mono < self._next_mono:
            return
        self._next_mono = now_mono + self._timing.renew_interval_s
        info = {
            "role": "leader" if lease_value else "follower",
            "config_hash": config.digest,
            "version": __version__,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": round(self._started_at, 3),
            "lease_ttl_s": self._timing.ttl_s,
        }
        reply = self._scripts.heartbeat(
            self._replica_id,
            json.dumps(info, separators=(",", ":")),
            lease_value,
            config.digest,
            int(FORGET_REPLICA_TTLS * self._timing.ttl_s * 1000),
        )
        metrics = self._metrics
        drift = bool(reply.leader_value) and reply.leader_config_hash not in ("", config.digest)
        metrics.config_drift.set(1 if drift else 0)
        if reply.paused != self.paused:
            self.paused = reply.paused
            if metrics.per_schedule:
                for schedule in config.schedules:
                    metrics.paused.labels(schedule.name).set(schedule.name in reply.paused)
        if not lease_value:
            self._announced = None
            self._log_leader(reply.leader_value)
        else:
            self._followed = ""  # after this term, whoever leads next is news
            self._announce_pauses(reply.paused)
            queues = self._queue_stats.read({s.queue for s in config.schedules}, reply.redis_time_s)
            for q in queues or ():
                groups = {g.name: (g.pending, g.lag) for g in q.groups}
                metrics.show_queue(q.queue, q.length, q.oldest_age_s, groups)

    def _log_leader(self, leader_value: str) -> None:
        """A follower says whom it follows: once per leader (a new token is a new leader)."""
        if not leader_value or leader_value == self._followed:
            return
        self._followed = leader_value
        token, _, holder = leader_value.partition(":")
        own = (
            " (left by an earlier run of this replica id; it expires)"
            if holder == self._replica_id
            else ""
        )
        log.info(
            "following %s (token %s)%s",
            holder,
            token,
            own,
            extra={"token": int(token) if token.isdigit() else None, "event": "following"},
        )

    def _announce_pauses(self, paused: frozenset[str]) -> None:
        """A leader says which schedules it skips: all of them at its first beat, then each
        pause and resume it sees (the enqueue script honours them at once either way; this is
        when the log says so, within a renewal interval)."""
        before, self._announced = self._announced, paused
        if before is None:
            if paused:
                log.info(
                    "leading with %d paused schedule(s), their fires are skipped: %s",
                    len(paused),
                    _names(paused),
                    extra={"event": "paused"},
                )
            return
        for word, names in (("paused", paused - before), ("resumed", before - paused)):
            if len(names) > PAUSE_LINES_MAX:
                log.info(
                    "%s: %d schedules: %s", word, len(names), _names(names), extra={"event": word}
                )
                continue
            for name in sorted(names):
                log.info("%s: %s", word, name, extra={"schedule": name, "event": word})


def _names(names: frozenset[str]) -> str:
    shown = sorted(names)[:PAUSE_LINES_MAX]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")
