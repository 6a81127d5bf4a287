"""The status snapshot: everything `cronlease status` and the web page read from Redis."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from redis import Redis

from scheduler.store.keys import Keys
from scheduler.store.queuestats import (
    GroupFigures,
    TargetQueue,
    add_reads,
    first_id_ms,
    groups,
    target_lengths,
)

# The status report names it by what it is there: a consumer group of a snapshot's queue.
GroupSnapshot = GroupFigures


@dataclass(frozen=True)
class Snapshot:
    """What Redis knows, read in one MULTI (queue figures in a second round trip)."""

    now_s: float  # Redis TIME
    leader_value: str | None
    lease_left_ms: int
    epoch: int
    leader_info: Mapping[str, str]
    replicas: Sequence[tuple[str, float]]  # (replica id, last seen in Redis ms)
    replica_info: Mapping[str, str]  # replica id -> JSON
    cursors: Mapping[str, int]
    paused: frozenset[str]
    queue_lengths: Mapping[str, int]
    queue_oldest_ms: Mapping[str, int | None] = field(default_factory=dict)  # first entry's id
    queue_groups: Mapping[str, Sequence[GroupSnapshot]] = field(default_factory=dict)


def read_snapshot(
    client: Redis,
    keys: Keys,
    queues: Iterable[str],
    targets: Mapping[str, TargetQueue] | None = None,
) -> Snapshot:
    """The lease, replicas, cursors and pauses in one MULTI; then every queue's length, first
    entry and consumer groups in one pipeline (XLEN, XRANGE, XINFO GROUPS: what the ACL rule of
    store/acl.py allows). Queues in `targets` are another job system's: their length is read
    from its keys, and they have no first entry or groups here."""
    targets = targets or {}
    pipe = client.pipeline(transaction=True)
    # TIME has no key, so Redis Cluster cannot put it in a MULTI: read it just before instead.
    clustered = not isinstance(client, Redis)
    time_before = client.time() if clustered else None
    if not clustered:
        pipe.time()
    pipe.get(keys.leader)
    pipe.pttl(keys.leader)
    pipe.get(keys.epoch)
    pipe.hgetall(keys.leader_info)
    pipe.zrange(keys.replicas, 0, -1, withscores=True)
    pipe.hgetall(keys.replica_info)
    pipe.hgetall(keys.cursor)
    pipe.smembers(keys.paused)
    replies = pipe.execute()
    if time_before is not None:
        replies = [time_before, *replies]
    (now, leader, pttl, epoch, leader_info, replicas, replica_info, cursors, paused) = replies
    prefix = keys.queue("")
    names = set(queues)
    for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=1000, _type="stream"):
        names.add(str(key)[len(prefix) :])
    ordered = sorted(names - set(targets))
    figures = client.pipeline(transaction=False)
    for name in ordered:
        add_reads(figures, keys.queue(name))
    # XINFO GROUPS on a queue no run has reached yet (no stream) is an error, not "no groups".
    replies = figures.execute(raise_on_error=False) if ordered else []
    counts = [_int(reply) for reply in replies[0::3]]
    target_counts = target_lengths(client, {q: t for q, t in targets.items() if q in names})
    return Snapshot(
        now_s=int(now[0]) + int(now[1]) / 1e6,
        leader_value=leader,
        lease_left_ms=max(0, int(pttl)),
        epoch=int(epoch or 0),
        leader_info=leader_info,
        replicas=[(str(member), float(score)) for member, score in replicas],
        replica_info=replica_info,
        cursors={name: int(float(ts)) for name, ts in cursors.items()},
        paused=frozenset(paused),
        queue_lengths={**dict(zip(ordered, counts, strict=True)), **target_counts},
        queue_oldest_ms=dict(zip(ordered, map(first_id_ms, replies[1::3]), strict=True)),
        queue_groups=dict(zip(ordered, map(groups, replies[2::3]), strict=True)),
    )


def _int(reply: object) -> int:
    if isinstance(reply, Exception):  # XLEN of a key that is no stream: say so, as before
        raise reply
    return int(str(reply))


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
