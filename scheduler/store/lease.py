"""The leader lease: acquire with a fencing token, renew to an absolute TTL, release and hand over.

The lease is held by this replica only while its own monotonic deadline, taken BEFORE sending the
renewal that set it, lies ahead. Past it, the replica stops enqueueing even if it cannot reach
Redis to learn whether someone else took over; the enqueue script's fence check is the safety
net that needs no clock at all.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.core.runs import Lease
from scheduler.store.clock import RedisClock
from scheduler.store.connection import REDIS_ERRORS
from scheduler.store.scripts import Scripts

log = logging.getLogger(__name__)


class TimingError(ValueError):
    """Incoherent lease timing settings."""


@dataclass(frozen=True)
class LeaseTiming:
    ttl_s: float
    socket_timeout_s: float

    @property
    def renew_interval_s(self) -> float:
        return self.ttl_s / 3

    @property
    def ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

    @classmethod
    def for_ttl(cls, ttl_s: float, socket_timeout_s: float | None = None) -> LeaseTiming:
        timeout = socket_timeout_s if socket_timeout_s is not None else min(2.0, ttl_s / 4)
        timing = cls(ttl_s, timeout)
        timing.check()
        return timing

    def check(self) -> None:
        """A renewal that times out must leave time for another before the lease expires."""
        if self.ttl_s < 0.3:
            raise TimingError(f"--lease-ttl {self.ttl_s:g}s is too short; use at least 0.3s")
        if self.socket_timeout_s <= 0:
            raise TimingError("the Redis socket timeout must be positive")
        needed = self.renew_interval_s + 2 * self.socket_timeout_s
        if needed >= self.ttl_s:
            raise TimingError(
                f"lease TTL {self.ttl_s:g}s is too short for a renewal every "
                f"{self.renew_interval_s:g}s with a Redis timeout of {self.socket_timeout_s:g}s: "
                "the TTL must exceed the renewal interval plus two timeouts; raise --lease-ttl "
                "or lower --redis-timeout"
            )


@dataclass(frozen=True)
class AcquireResult:
    acquired: bool
    retry_in_s: float  # when the current holder's lease would expire (if not acquired)
    data_lost: bool  # the generation marker changed under us: Redis lost its data


class LeaseKeeper:
    def __init__(
        self,
        scripts: Scripts,
        replica_id: str,
        timing: LeaseTiming,
        clock: RedisClock,
        confirm: Callable[[str], bool] | None = None,
    ) -> None:
        self._scripts = scripts
        # --redis-wait-replicas (scheduler/durability.py): confirm("acquire" | "renew") is True
        # once enough replicas hold the write.
        self._confirm = confirm
        self.replica_id = replica_id
        self.timing = timing
        self._clock = clock
        self.lease: Lease | None = None
        self._deadline_mono = 0.0
        self.next_renew_mono = 0.0
        self.generation: str | None = None
        self.not_renewed_because = ""  # why the last renew() returned False, for the log

    @property
    def held(self) -> bool:
        """True while we believe we lead (valid() may still say the deadline passed)."""
        return self.lease is not None

    def valid(self) -> bool:
        return self.lease is not None and time.monotonic() < self._deadline_mono

    def time_left_s(self) -> float:
        return max(0.0, self._deadline_mono - time.monotonic())

    def try_acquire(self) -> AcquireResult:
        sent = time.monotonic()
        reply = self._scripts.acquire(
            self.replica_id, self.timing.ttl_ms, fresh_generation=secrets.token_hex(8)
        )
        received = time.monotonic()
        self._clock.sample(reply.redis_time_s, sent, received)
        data_lost = self.generation is not None and reply.generation != self.generation
        self.generation = reply.generation
        if reply.token == 0:
            return AcquireResult(False, max(0.0, reply.pttl_ms / 1000), data_lost)
        # Durability hook: a lease that too few replicas hold could vanish in a failover while
        # we lead on it. Not acquired, then; the key (ours) expires after one TTL.
        if self._confirm is not None and not self._confirm("acquire"):
            return AcquireResult(False, self.timing.ttl_s, data_lost)
        self.lease = Lease(f"{reply.token}:{self.replica_id}", reply.token, self.replica_id)
        self._deadline_mono = sent + self.timing.ttl_s
        self.next_renew_mono = sent + self.timing.renew_interval_s
        return AcquireResult(True, 0.0, data_lost)

    def renew(self) -> bool:
        """Renew; False means the lease is someone else's now (we are a follower again).

        Runs on the renewal thread while the main loop reads `lease` and `valid()`: it works on
        the lease it started with and changes nothing if that lease was dropped meanwhile."""
        lease = self.lease
        if lease is None:
            return False
        sent = time.monotonic()
        # Until this renewal succeeds, retry soon rather than after a full interval.
        self.next_renew_mono = sent + min(self.timing.renew_interval_s, self.timing.ttl_s / 10)
        reply = self._scripts.renew(lease.value, self.timing.ttl_ms)
        received = time.monotonic()
        self._clock.sample(reply.redis_time_s, sent, received)
        if not reply.renewed:
            self.not_renewed_because = (
                "the lease is no longer ours (it expired or another replica took it)"
            )
            self._drop_if(lease)
            return False
        # Durability hook: a renewal too few replicas hold is treated as not made.
        if self._confirm is not None and not self._confirm("renew"):
            self.not_renewed_because = "the lease renewal was not acknowledged by replicas"
            self._drop_if(lease)
            return False
        if self.lease is lease:
            self._deadline_mono = sent + self.timing.ttl_s
            self.next_renew_mono = sent + self.timing.renew_interval_s
        return True

    def _drop_if(self, lease: Lease) -> None:
        if self.lease is lease:
            self.drop()

    def release(self) -> bool:
        """Compare-and-delete, then publish the handover; True if it was still ours."""
        if self.lease is None:
            return False
        lease, self.lease = self.lease, None
        return self._scripts.release(lease.value)

    def give_back(self) -> None:
        """Release if Redis lets us (a takeover that failed part-way), forget it either way:
        another replica leads now rather than after a TTL with no leader."""
        try:
            self.release()
        except REDIS_ERRORS:
            pass  # unreachable: the lease expires on its own
        finally:
            self.drop()

    def drop(self) -> None:
        """Forget the lease locally (lost, lapsed or fenced)."""
        self.lease = None
        self._deadline_mono = 0.0
