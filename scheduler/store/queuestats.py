"""Queue stream figures for the leader's metrics: length, pending and undelivered per consumer
group, age of the oldest entry. One pipelined round trip, at most every few seconds."""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis
from redis import Redis

from scheduler.ops.metrics import Metrics
from scheduler.store.keys import Keys

REFRESH_EVERY_S = 5.0


class QueueStats:
    def __init__(self, client: Redis, keys: Keys, metrics: Metrics) -> None:
        self._client = client
        self._keys = keys
        self._metrics = metrics
        self._next_mono = 0.0

    def clear(self) -> None:
        for gauge in (
            self._metrics.queue_length,
            self._metrics.queue_pending,
            self._metrics.queue_lag,
            self._metrics.queue_oldest_age,
        ):
            gauge.clear()
        self._next_mono = 0.0

    def refresh(self, queues: Iterable[str], redis_now_s: float) -> None:
        now_mono = time.monotonic()
        if now_mono < self._next_mono:
            return
        self._next_mono = now_mono + REFRESH_EVERY_S
        names = sorted(queues)
        pipe = self._client.pipeline(transaction=False)
        for queue in names:
            key = self._keys.queue(queue)
            pipe.xlen(key)
            pipe.xrange(key, count=1)
            pipe.xinfo_groups(key)
        replies = pipe.execute(raise_on_error=False)
        m = self._metrics
        for index, queue in enumerate(names):
            length, first, groups = replies[3 * index : 3 * index + 3]
            m.queue_length.labels(queue).set(length if isinstance(length, int) else 0)
            if isinstance(first, list) and first:
                first_ms = int(str(first[0][0]).split("-")[0])
                m.queue_oldest_age.labels(queue).set(max(0.0, redis_now_s - first_ms / 1000))
            else:
                m.queue_oldest_age.labels(queue).set(0)
            if isinstance(groups, redis.ResponseError) or not isinstance(groups, list):
                continue  # no stream yet, or no XINFO permission: nothing to say
            for group in groups:
                name = str(group.get("name"))
                m.queue_pending.labels(queue, name).set(int(group.get("pending") or 0))
                lag = group.get("lag")
                if lag is not None:  # Redis 7+: entries not yet delivered to the group
                    m.queue_lag.labels(queue, name).set(int(lag))
