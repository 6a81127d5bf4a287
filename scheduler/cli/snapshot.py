"""The status snapshot: everything `cronlease status` reads from Redis, in one MULTI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from redis import Redis

from scheduler.store.keys import Keys


@dataclass(frozen=True)
class Snapshot:
    """What Redis knows, read in one MULTI (queue lengths in a second round trip)."""

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


def read_snapshot(client: Redis, keys: Keys, queues: Iterable[str]) -> Snapshot:
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
    ordered = sorted(names)
    lengths = client.pipeline(transaction=False)
    for name in ordered:
        lengths.xlen(keys.queue(name))
    counts = lengths.execute() if ordered else []
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
        queue_lengths=dict(zip(ordered, (int(c) for c in counts), strict=True)),
    )


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
