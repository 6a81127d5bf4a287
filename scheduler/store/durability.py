"""Optional durability: a write counts only once N replicas acknowledge it (`WAIT`).

Redis replicates asynchronously. A primary acknowledges a write before any replica has it, so
when the primary dies and Sentinel (or Cluster) promotes a replica, the last writes can be gone:

- a lost lease write: a replica that renewed or acquired on the old primary acts as leader
  while the new primary has no such lease, so another replica can be elected meanwhile (the
  enqueue script's fence stops the old leader's writes on the new primary, but not on an old
  primary that is cut off from Sentinel yet still reachable by some clients: split brain);
- a lost enqueue: runs and the cursor advance a worker may already have read from the old
  primary vanish; the next leader resumes from the older cursor and enqueues them again.

With `--redis-wait-replicas N` the replica sends `WAIT N timeout` after each lease write
(acquire, renew) and after each enqueue call. Not acknowledged in time means "a failover could
lose this": an acquisition or renewal is treated as not made (the replica does not lead on it),
and an enqueue makes the leader stand down so that a new leader resumes from whatever cursor the
replicas do hold. Each case is logged loudly and counted in
`cronlease_redis_unacknowledged_writes_total{write}`. A Redis error while confirming counts as
not acknowledged too: we cannot tell.

WAIT narrows the window; it does not make Redis synchronous. A write that WAIT reports as not
acknowledged was still applied on the primary (and may be seen there by workers), and a
failover may still promote a replica that had not acknowledged it when more than N replicas
exist. The primary's `min-replicas-to-write N` / `min-replicas-max-lag S` close the other side:
a primary that lost its replicas refuses writes after S seconds, so a cut-off old primary stops
taking runs. Together they bound a duplicate to runs written in the last S seconds before a
failover, and turn "lost silently" into "refused and retried". The price is availability: with
fewer than N healthy replicas nothing is written (the schedules wait and catch up).

WAIT covers the writes of the connection that sends it, up to that connection's last write.
The lease renewal and the enqueue run on different threads sharing one connection pool, so the
write being confirmed may have gone out on another connection. Each confirmation therefore
sends a small write of its own (`SET <wait-probe key> ... PX`) and then WAIT, pipelined on one
connection: the probe is propagated after the write being confirmed, so WAIT covers both.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.cluster import RedisCluster

from scheduler.store.connection import REDIS_ERRORS

log = logging.getLogger(__name__)

PROBE_TTL_MS = 60_000


class DurabilityError(ValueError):
    """Incoherent --redis-wait-* settings."""


class Durability:
    """Confirms writes with a probe write plus `WAIT replicas timeout_ms`, on the primary that
    holds `probe_key` (and every other key of the namespace)."""

    def __init__(
        self,
        replicas: int,
        timeout_s: float,
        probe_key: str,
        probe_value: str = "",
        unacknowledged: Any = None,
    ) -> None:
        self.replicas = replicas
        self.timeout_s = timeout_s
        self.timeout_ms = max(1, round(timeout_s * 1000))
        self._probe_key = probe_key
        self._probe_value = probe_value or "cronlease"
        # A prometheus Counter with a `write` label, or None.
        self._unacknowledged = unacknowledged

    @classmethod
    def from_settings(
        cls,
        replicas: int,
        timeout_s: float | None,
        socket_timeout_s: float,
        probe_key: str,
        probe_value: str = "",
        unacknowledged: Any = None,
    ) -> Durability | None:
        """None when off (replicas 0); DurabilityError for settings that cannot work."""
        if replicas < 0:
            raise DurabilityError("--redis-wait-replicas must be 0 (off) or more")
        if replicas == 0:
            if timeout_s is not None:
                log.info("--redis-wait-timeout is ignored: --redis-wait-replicas is 0 (off)")
            return None
        timeout = timeout_s if timeout_s is not None else socket_timeout_s / 2
        if not 0 < timeout < socket_timeout_s:
            raise DurabilityError(
                f"--redis-wait-timeout {timeout:g}s must be positive and shorter than the Redis "
                f"timeout ({socket_timeout_s:g}s), or the socket gives up while WAIT still waits"
            )
        return cls(replicas, timeout, probe_key, probe_value, unacknowledged)

    def confirmer(self, client: Redis) -> Callable[[str], bool]:
        """`confirm` bound to one client: what LeaseKeeper calls after acquire and renew."""
        return functools.partial(self.confirm, client)

    def confirm(self, client: Redis, write: str) -> bool:
        """True once `replicas` replicas have every write made before this call."""
        error: Exception | None = None
        try:
            acked = self._probe_and_wait(client)
        except REDIS_ERRORS as failed:
            acked, error = 0, failed
        if error is None and acked >= self.replicas:
            return True
        if self._unacknowledged is not None:
            self._unacknowledged.labels(write).inc()
        outcome = (
            f"WAIT failed ({type(error).__name__}: {error})"
            if error is not None
            else f"{acked} of the {self.replicas} required within {self.timeout_ms} ms"
        )
        log.error(
            "%s NOT ACKNOWLEDGED by replicas: %s; a failover now could lose it, so it is not "
            "acted on",
            write,
            outcome,
            extra={"event": "unacknowledged"},
        )
        return False

    def _probe_and_wait(self, client: Redis) -> int:
        target: Any = client
        if isinstance(client, RedisCluster):
            # A plain client of the primary that holds our slot: WAIT has no key to route by.
            cluster: Any = client
            target = cluster.get_redis_connection(cluster.get_node_from_key(self._probe_key))
        pipe = target.pipeline(transaction=False)
        pipe.set(self._probe_key, self._probe_value, px=PROBE_TTL_MS)
        pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
        _, acked = pipe.execute()
        return int(acked)
