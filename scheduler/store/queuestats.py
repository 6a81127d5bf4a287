"""Queue stream figures: length, oldest entry's age, pending and undelivered per consumer group.

One pipelined round trip, at most every few seconds; the leader shows them as metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis
from redis import Redis

from scheduler.store.keys import Keys

REFRESH_EVERY_S = 5.0


@dataclass(frozen=True)
class GroupFigures:
    pending: int  # delivered to a consumer, not acknowledged
    undelivered: int | None  # not yet delivered to the group (Redis 7+; None before)


@dataclass(frozen=True)
class QueueFigures:
    queue: str
    length: int
    oldest_age_s: float  # 0 for an empty (or absent) stream
    groups: dict[str, GroupFigures] = field(default_factory=dict)


class QueueStats:
    def __init__(self, client: Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._next_mono = 0.0

    def reset(self) -> None:
        """The next read() reads at once (a new leader shows figures without waiting)."""
        self._next_mono = 0.0

    def read(self, queues: Iterable[str], redis_now_s: float) -> list[QueueFigures] | None:
        """Figures of each queue, or None when the last read was less than REFRESH_EVERY_S ago."""
        now_mono = time.monotonic()
        if now_mono < self._next_mono:
            return None
        self._next_mono = now_mono + REFRESH_EVERY_S
        names = sorted(queues)
        pipe = self._client.pipeline(transaction=False)
        for queue in names:
            key = self._keys.queue(queue)
            pipe.xlen(key)
            pipe.xrange(key, count=1)
            pipe.xinfo_groups(key)
        replies = pipe.execute(raise_on_error=False)
        figures: list[QueueFigures] = []
        for index, queue in enumerate(names):
            length, first, groups = replies[3 * index : 3 * index + 3]
            oldest_age_s = 0.0
            if isinstance(first, list) and first:
                first_ms = int(str(first[0][0]).split("-")[0])
                oldest_age_s = max(0.0, redis_now_s - first_ms / 1000)
            by_group: dict[str, GroupFigures] = {}
            # No stream yet, or no XINFO permission: nothing to say about groups.
            if isinstance(groups, list) and not isinstance(groups, redis.ResponseError):
                for group in groups:
                    lag = group.get("lag")
                    by_group[str(group.get("name"))] = GroupFigures(
                        int(group.get("pending") or 0), None if lag is None else int(lag)
                    )
            figures.append(
                QueueFigures(
                    queue, length if isinstance(length, int) else 0, oldest_age_s, by_group
                )
            )
        return figures
