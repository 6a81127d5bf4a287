"""The replica's heartbeat: it says it is alive (role, config hash, version, host), and learns the
leader's config hash (drift), the paused schedules, and, when leading, the queues' figures."""

from __future__ import annotations

import json
import os
import socket
import time

from scheduler import __version__
from scheduler.core.schedule import Config
from scheduler.ops.metrics import Metrics
from scheduler.store.lease import LeaseTiming
from scheduler.store.queuestats import QueueStats
from scheduler.store.scripts import Scripts

# Replicas silent for this many lease TTLs drop out of the heartbeat set.
FORGET_REPLICA_TTLS = 30


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

    def soon(self) -> None:
        """Beat on the next turn (a new leader, a new config)."""
        self._next_mono = 0.0

    def due_in_s(self) -> float:
        return self._next_mono - time.monotonic()

    def follow(self) -> None:
        """No longer leading: queue figures are a leader's to show."""
        self._queue_stats.reset()
        self._metrics.clear_queues()

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
        if lease_value:
            queues = self._queue_stats.read({s.queue for s in config.schedules}, reply.redis_time_s)
            for q in queues or ():
                groups = {name: (g.pending, g.undelivered) for name, g in q.groups.items()}
                metrics.show_queue(q.queue, q.length, q.oldest_age_s, groups)
