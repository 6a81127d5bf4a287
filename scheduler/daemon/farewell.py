"""A clean stop, in Redis: give the lease back (followers take over at once) and take this
replica off the heartbeat list (so `status` shows STALE only for replicas that vanished).

Both are best effort: Redis may be down when we stop. An unreleased lease expires on its own
within a TTL; an unremoved heartbeat shows STALE after 3 TTLs and is forgotten after 30.
"""

from __future__ import annotations

import logging

from scheduler.ops.metrics import Metrics
from scheduler.store.connection import REDIS_ERRORS
from scheduler.store.lease import LeaseKeeper
from scheduler.store.scripts import Scripts

log = logging.getLogger("scheduler.daemon")


def release_and_leave(
    lease: LeaseKeeper, scripts: Scripts, metrics: Metrics, replica_id: str
) -> None:
    # The lease first: a follower waits on it, while the heartbeat only misleads `status`.
    if lease.held:
        token = lease.lease.token if lease.lease else None
        try:
            released = lease.release()
            metrics.leader_changes.labels("released").inc()
            log.info(
                "released the lease (%s); followers were told to take over",
                "ok" if released else "it was no longer ours",
                extra={"token": token, "event": "released"},
            )
        except REDIS_ERRORS as error:
            log.warning(
                "could not release the lease (%s); it expires on its own, and `status` shows "
                "this replica STALE until it is forgotten",
                error,
            )
            metrics.leader.set(0)
            return  # Redis is away: a second timeout would only delay the stop
        metrics.leader.set(0)
    try:
        scripts.leave(replica_id)
        log.debug("removed this replica's heartbeat")
    except REDIS_ERRORS as error:
        log.warning(
            "could not remove this replica's heartbeat (%s); `status` shows it STALE until it "
            "is forgotten",
            error,
        )
