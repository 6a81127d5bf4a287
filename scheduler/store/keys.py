"""Every Redis key of a namespace, built in one place.

All keys carry the hash tag `{<namespace>}` so that one Lua script may touch any of them, on
Redis Cluster too (they all live in one slot).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    namespace: str = "cronlease"

    @property
    def prefix(self) -> str:
        return "{" + self.namespace + "}"

    @property
    def leader(self) -> str:
        """String with PX: `<token>:<replica-id>` of the lease holder."""
        return f"{self.prefix}:leader"

    @property
    def epoch(self) -> str:
        """Integer, INCR on every acquisition: the fencing token."""
        return f"{self.prefix}:epoch"

    @property
    def cursor(self) -> str:
        """Hash: schedule name -> last handled fire time (Unix seconds)."""
        return f"{self.prefix}:cursor"

    @property
    def paused(self) -> str:
        """Set of paused schedule names."""
        return f"{self.prefix}:paused"

    @property
    def generation(self) -> str:
        """A random id written once; if it vanishes or changes, Redis lost its data."""
        return f"{self.prefix}:generation"

    @property
    def handover(self) -> str:
        """Pub/sub channel: a leader that released its lease says so here."""
        return f"{self.prefix}:handover"

    @property
    def events(self) -> str:
        """Pub/sub channel: operator commands that write runs without the leader (trigger, and
        backfill when it comes) announce them here, so the leader's log says what happened."""
        return f"{self.prefix}:events"

    @property
    def replicas(self) -> str:
        """Sorted set: replica id -> last time it was seen (Redis time, ms)."""
        return f"{self.prefix}:replicas"

    @property
    def replica_info(self) -> str:
        """Hash: replica id -> JSON {role, config_hash, version, host, started_at}."""
        return f"{self.prefix}:replica-info"

    @property
    def leader_info(self) -> str:
        """Hash the leader keeps up to date: since, config hash, token."""
        return f"{self.prefix}:leader-info"

    @property
    def wait_probe(self) -> str:
        """String with PX, written just before each WAIT (--redis-wait-replicas): the write
        that makes WAIT cover every earlier write of this replica, whatever its connection."""
        return f"{self.prefix}:wait-probe"

    def queue(self, name: str) -> str:
        """Stream of runs for one queue."""
        return f"{self.prefix}:queue:{name}"

    def outbox(self, name: str) -> str:
        """Stream of runs of a queue delivered by the relay (a target outside this Redis):
        written by the enqueue script like a queue stream, read by the leader's relay."""
        return f"{self.prefix}:outbox:{name}"

    def dead_letters(self, queue: str) -> str:
        """Stream of one queue's dead runs (`cronlease dlq`): the run's fields, the error and the
        attempts."""
        return f"{self.prefix}:dlq:{queue}"

    def retries(self, queue: str) -> str:
        """Sorted set of one queue's runs waiting to be retried: the next attempt's fields (JSON)
        scored by when it is due (Redis time, ms)."""
        return f"{self.prefix}:retry:{queue}"

    def succeeded(self, run_id: str) -> str:
        """String with EX: this run id succeeded; a worker acknowledges a redelivery unrun."""
        return f"{self.prefix}:done:{run_id}"

    def once(self, name: str, key: str) -> str:
        """String with EX: a job's `run.once(name, key)` block was entered for this key."""
        return f"{self.prefix}:once:{name}:{key}"
