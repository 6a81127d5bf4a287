"""Queue stream figures: length, first entry, consumer groups (pending, undelivered), as the
leader's metrics and `cronlease status` read them: one pipelined round trip for all queues."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis import Redis

from scheduler.store.keys import Keys
from scheduler.store.lua import QUEUE_LENGTHS

REFRESH_EVERY_S = 5.0


@dataclass(frozen=True)
class GroupFigures:
    """One consumer group of a queue stream, as XINFO GROUPS tells it."""

    name: str
    consumers: int
    pending: int  # delivered to a consumer, not acknowledged
    lag: int | None  # not yet delivered to the group (Redis 7+; None before)
    last_delivered_id: str


@dataclass(frozen=True)
class QueueFigures:
    queue: str
    length: int
    oldest_age_s: float | None  # 0 for an empty (or absent) stream; None: a target's (unknown)
    groups: list[GroupFigures] = field(default_factory=list)


@dataclass(frozen=True)
class TargetQueue:
    """Where another job system keeps a queue's waiting runs: (key, "list" | "zset") pairs."""

    db: int | None
    keys: Sequence[tuple[str, str]]


def target_lengths(client: Redis, targets: Mapping[str, TargetQueue]) -> dict[str, int]:
    """Each target queue's waiting runs, summed over its keys: one QUEUE_LENGTHS call per
    queue, pipelined (the script SELECTs the target's db for itself alone)."""
    if not targets:
        return {}
    names = sorted(targets)
    script = client.register_script(QUEUE_LENGTHS)
    pipe = client.pipeline(transaction=False)
    for name in names:
        target = targets[name]
        args = ["" if target.db is None else target.db, *(kind for _, kind in target.keys)]
        script(keys=[key for key, _ in target.keys], args=args, client=pipe)
    replies = pipe.execute(raise_on_error=False)
    return {
        name: sum(int(size) for size in reply) if isinstance(reply, list) else 0
        for name, reply in zip(names, replies, strict=True)
    }


def add_reads(pipe: Any, key: str) -> None:
    """The three reads of one queue stream (XLEN, XRANGE of its first entry, XINFO GROUPS),
    all allowed by the ACL rule; parse their replies with first_id_ms and groups."""
    pipe.xlen(key)
    pipe.xrange(key, count=1)
    pipe.xinfo_groups(key)


def first_id_ms(reply: object) -> int | None:
    """The milliseconds part of the first entry's id (when it was added), None when empty."""
    if not isinstance(reply, list) or not reply:
        return None
    return int(str(reply[0][0]).split("-")[0])


def groups(reply: object) -> list[GroupFigures]:
    """XINFO GROUPS, by name; none for a stream no run has reached yet (an error reply) or
    without XINFO permission."""
    if not isinstance(reply, list) or isinstance(reply, redis.ResponseError):
        return []
    found = [
        GroupFigures(
            name=str(group.get("name")),
            consumers=int(group.get("consumers") or 0),
            pending=int(group.get("pending") or 0),
            lag=None if group.get("lag") is None else int(group["lag"]),
            last_delivered_id=str(group.get("last-delivered-id") or "0-0"),
        )
        for group in reply
        if isinstance(group, dict)
    ]
    return sorted(found, key=lambda group: group.name)


class QueueStats:
    def __init__(self, client: Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._next_mono = 0.0
        self._targets: Mapping[str, TargetQueue] = {}

    def set_targets(self, targets: Mapping[str, TargetQueue]) -> None:
        """Queues delivered into other job systems: their length is read from there."""
        self._targets = dict(targets)

    def reset(self) -> None:
        """The next read() reads at once (a new leader shows figures without waiting)."""
        self._next_mono = 0.0

    def read(self, queues: Iterable[str], redis_now_s: float) -> list[QueueFigures] | None:
        """Figures of each queue, or None when the last read was less than REFRESH_EVERY_S ago."""
        now_mono = time.monotonic()
        if now_mono < self._next_mono:
            return None
        self._next_mono = now_mono + REFRESH_EVERY_S
        wanted = set(queues)
        names = sorted(wanted - set(self._targets))
        targets = {q: t for q, t in self._targets.items() if q in wanted}
        pipe = self._client.pipeline(transaction=False)
        for queue in names:
            add_reads(pipe, self._keys.queue(queue))
        replies = pipe.execute(raise_on_error=False)
        figures: list[QueueFigures] = []
        for index, queue in enumerate(names):
            length, first, group_reply = replies[3 * index : 3 * index + 3]
            first_ms = first_id_ms(first)
            oldest_age_s = 0.0 if first_ms is None else max(0.0, redis_now_s - first_ms / 1000)
            figures.append(
                QueueFigures(
                    queue,
                    length if isinstance(length, int) else 0,
                    oldest_age_s,
                    groups(group_reply),
                )
            )
        lengths = target_lengths(self._client, targets)
        figures += [QueueFigures(queue, lengths[queue], None) for queue in sorted(targets)]
        return figures
