"""The worker's Redis calls: consumer-group reads and claims, verdicts, retries, dead letters.

The scripts (SETTLE, PROMOTE, REPLAY) and their KEYS/ARGV contracts are in scheduler/store/lua/;
every key comes from keys.py. Entries are `(entry id, fields)` with text fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis import Redis
from redis.commands.core import Script

from scheduler.store.keys import Keys
from scheduler.store.lua import PROMOTE, REPLAY, SETTLE

Entry = tuple[str, dict[str, str]]


@dataclass(frozen=True)
class Promoted:
    moved: int
    next_due_ms: int | None  # the next waiting retry, None when the set is empty
    redis_now_ms: int


@dataclass(frozen=True)
class QueueFigures:
    """What the worker's gauges show of one queue, read in one go."""

    retries_waiting: int
    dead_letters: int
    oldest_waiting_age_s: float  # undelivered in the stream, or due in the retry set; 0 if none


class WorkQueue:
    """One client's view of the streams a group of workers shares."""

    def __init__(self, client: Redis, keys: Keys, group: str) -> None:
        self.client = client
        self.keys = keys
        self.group = group
        self._settle: Script = client.register_script(SETTLE)
        self._promote: Script = client.register_script(PROMOTE)
        self._replay: Script = client.register_script(REPLAY)

    # -- delivery -------------------------------------------------------------------------------

    def ensure_group(self, stream: str) -> bool:
        """Create the group at the stream's start (runs enqueued before the first worker came
        are work too); False when it existed."""
        try:
            self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
            return False
        return True

    def read(
        self, consumer: str, streams: Mapping[str, int], block_ms: int | None = None
    ) -> list[tuple[str, list[Entry]]]:
        """New entries (`>`) for `consumer`: at most `count` from each stream."""
        if not streams:
            return []
        count = max(streams.values())
        reply: Any = self.client.xreadgroup(
            self.group, consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms
        )
        return [(str(stream), _entries(entries)) for stream, entries in reply or []]

    def autoclaim(
        self, stream: str, consumer: str, min_idle_ms: int, count: int, start: str
    ) -> tuple[list[Entry], str]:
        """Entries idle (unacknowledged, untouched) for `min_idle_ms`, now ours, and the cursor
        to go on from ("0-0" once the pending list was walked through)."""
        reply: Any = self.client.xautoclaim(
            stream, self.group, consumer, min_idle_ms, start_id=start, count=count
        )
        # Entries deleted from the stream while pending come back as None: nothing to run.
        entries = [e for e in reply[1] if e and e[1] is not None]
        return _entries(entries), str(reply[0])

    def touch(self, stream: str, consumer: str, entry_ids: Sequence[str], idle_ms: int = 0) -> None:
        """Reset the idle time of entries we are running, so no one claims a live run; with
        `idle_ms`, set it instead (a stopping worker hands its unfinished runs over at once)."""
        if entry_ids:
            self.client.xclaim(
                stream, self.group, consumer, 0, list(entry_ids), idle=idle_ms, justid=True
            )

    def forget_consumer(self, stream: str, consumer: str) -> None:
        """Drop a stopping worker's consumer from the group if it holds no entry."""
        for info in self.client.xinfo_consumers(stream, self.group):
            if info.get("name") == consumer and int(info.get("pending") or 0) == 0:
                self.client.xgroup_delconsumer(stream, self.group, consumer)

    # -- verdicts -------------------------------------------------------------------------------

    def succeeded_already(self, run_ids: Sequence[str]) -> list[bool]:
        """For each run id: did a run of it succeed (within the remembered time)?"""
        if not run_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.exists(self.keys.succeeded(run_id))
        return [bool(found) for found in pipe.execute()]

    def ack(self, stream: str, entry_id: str) -> bool:
        return bool(self.client.xack(stream, self.group, entry_id))

    def settle_done(self, stream: str, entry_id: str, run_id: str, who: str, ttl_s: int) -> bool:
        key = self.keys.succeeded(run_id)
        return self._call_settle([stream, key], [entry_id, "done", who, ttl_s])

    def settle_retry(
        self, stream: str, queue: str, entry_id: str, delay_ms: int, fields: Mapping[str, str]
    ) -> bool:
        flat = [value for pair in fields.items() for value in pair]
        member = json.dumps(flat, separators=(",", ":"))
        return self._call_settle(
            [stream, self.keys.retries(queue)], [entry_id, "retry", delay_ms, member]
        )

    def settle_dead(
        self, stream: str, queue: str, entry_id: str, fields: Mapping[str, str]
    ) -> bool:
        flat = [value for pair in fields.items() for value in pair]
        return self._call_settle([stream, self.keys.dead_letters(queue)], [entry_id, "dead", *flat])

    def _call_settle(self, keys: list[str], args: list[str | int]) -> bool:
        return int(self._settle(keys=keys, args=[self.group, *args])) == 1

    def promote(self, queue: str, limit: int = 100) -> Promoted:
        moved, next_due, now_ms = self._promote(
            keys=[self.keys.retries(queue), self.keys.queue(queue)], args=[limit]
        )
        due = int(float(next_due))
        return Promoted(int(moved), None if due < 0 else due, int(float(now_ms)))

    def claim_once(self, name: str, key: str, holder: str, ttl_s: int) -> bool:
        """`run.once`: True for the first claim of (name, key) within `ttl_s`."""
        return bool(self.client.set(self.keys.once(name, key), holder, nx=True, ex=ttl_s))

    def release_once(self, name: str, key: str) -> None:
        self.client.delete(self.keys.once(name, key))

    # -- figures --------------------------------------------------------------------------------

    def figures(self, queues: Sequence[str]) -> dict[str, QueueFigures]:
        """Two pipelined round trips for every queue's gauges."""
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        for queue in queues:
            pipe.xinfo_groups(k.queue(queue))
            pipe.zcard(k.retries(queue))
            pipe.zrange(k.retries(queue), 0, 0, withscores=True)
            pipe.xlen(k.dead_letters(queue))
        replies = pipe.execute(raise_on_error=False)
        seconds, micros = replies[0]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        last_delivered: dict[str, str] = {}
        for index, queue in enumerate(queues):
            groups = replies[1 + 4 * index]
            if isinstance(groups, list):
                for group in groups:
                    if group.get("name") == self.group:
                        last_delivered[queue] = str(group.get("last-delivered-id"))
        pipe = self.client.pipeline(transaction=False)
        for queue, last in last_delivered.items():
            pipe.xrange(k.queue(queue), min=f"({last}", count=1)
        after = dict(zip(last_delivered, pipe.execute(raise_on_error=False), strict=True))
        figures: dict[str, QueueFigures] = {}
        for index, queue in enumerate(queues):
            _, waiting, first, dead = replies[1 + 4 * index : 5 + 4 * index]
            ages = [0.0]
            if isinstance(first, list) and first and float(first[0][1]) <= now_ms:
                ages.append((now_ms - float(first[0][1])) / 1000)
            undelivered = after.get(queue)
            if isinstance(undelivered, list) and undelivered:
                ages.append((now_ms - entry_ms(str(undelivered[0][0]))) / 1000)
            figures[queue] = QueueFigures(
                int(waiting) if isinstance(waiting, int) else 0,
                int(dead) if isinstance(dead, int) else 0,
                max(ages),
            )
        return figures

    # -- dead letters ---------------------------------------------------------------------------

    def dead(self, queue: str, count: int, start: str = "-", end: str = "+") -> list[Entry]:
        """Dead letters, oldest first, from `start` to `end` (ids, both included)."""
        key = self.keys.dead_letters(queue)
        return _entries(self.client.xrange(key, min=start, max=end, count=count))

    def last_dead_id(self, queue: str) -> str | None:
        newest = self.client.xrevrange(self.keys.dead_letters(queue), count=1)
        return str(newest[0][0]) if newest else None

    def replay(self, queue: str, entry_ids: Sequence[str], drop: Sequence[str]) -> list[str]:
        """Each dead letter back to its stream without the `drop` fields: its new entry id, or
        '' for an id not there."""
        k = self.keys
        reply = self._replay(
            keys=[k.dead_letters(queue), k.queue(queue)], args=[len(drop), *drop, *entry_ids]
        )
        return [str(entry_id) for entry_id in reply]

    def purge(self, queue: str, older_than_ms: int | None) -> int:
        """Delete every dead letter, or those that died more than `older_than_ms` ago (an entry
        id is the Redis time it was written, so XTRIM MINID does it in one step)."""
        key = self.keys.dead_letters(queue)
        if older_than_ms is None:
            count = int(self.client.xlen(key))
            self.client.delete(key)
            return count
        seconds, micros = self.client.time()
        cutoff = int(seconds) * 1000 + int(micros) // 1000 - older_than_ms
        return int(self.client.xtrim(key, minid=f"{max(cutoff, 0)}-0", approximate=False))


def entry_ms(entry_id: str) -> int:
    """The Redis time (ms) an entry was added: the first half of its id."""
    return int(entry_id.split("-", 1)[0])


def _entries(raw: Any) -> list[Entry]:
    return [
        (str(entry_id), {str(k): str(v) for k, v in fields.items()}) for entry_id, fields in raw
    ]
