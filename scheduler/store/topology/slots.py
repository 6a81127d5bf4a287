"""The start-up check that every cronlease key hashes to one Redis Cluster slot."""

from __future__ import annotations

from collections.abc import Sequence

from redis.crc import key_slot

from scheduler.store.keys import Keys
from scheduler.store.topology.url import TopologyError


def check_keys(keys: Keys, queues: Sequence[str]) -> None:
    """Every key cronlease uses must hash to one slot, or its scripts fail on Redis Cluster.

    They do when the namespace is a proper hash tag, so this rejects what breaks it: braces in
    the namespace, an empty one. Checked at start-up on every topology, so a namespace that works
    on one server keeps working when that server becomes a cluster.
    """
    namespace = keys.namespace
    if not namespace or "{" in namespace or "}" in namespace:
        raise TopologyError(
            f"--namespace {namespace!r}: must be non-empty and contain no '{{' or '}}': every "
            "key is `{<namespace>}:...`, and that hash tag keeps all of them in one Redis "
            "Cluster slot"
        )
    names = {
        "leader": keys.leader,
        "epoch": keys.epoch,
        "cursor": keys.cursor,
        "paused": keys.paused,
        "generation": keys.generation,
        "replicas": keys.replicas,
        "replica-info": keys.replica_info,
        "leader-info": keys.leader_info,
        "wait-probe": keys.wait_probe,
        **{f"queue {queue!r}": keys.queue(queue) for queue in sorted(set(queues))},
    }
    home = key_slot(keys.leader.encode())
    for what, key in names.items():
        slot = key_slot(key.encode())
        if slot != home:
            raise TopologyError(
                f"key {key!r} ({what}) hashes to slot {slot}, the lease to slot {home}: "
                "one script could not touch both on Redis Cluster"
            )
