"""The outbox streams' consumer group, as the relay uses it: read, claim, acknowledge, trim.

`{cronlease}:outbox:<queue>` is written by the enqueue script like a queue stream (a run is in
the outbox exactly once, atomically with its cursor). The leader's relay reads it in the
consumer group RELAY_GROUP, under its replica id: runs it read and did not acknowledge stay in
the group's pending list, so after a crash they are read again (its own, with id 0) or claimed
by the next leader (XAUTOCLAIM, once idle longer than a lease: the old leader has stopped by
then). A run is acknowledged only once its target confirmed it, and the stream is trimmed only
below the oldest run not yet acknowledged, so nothing unconfirmed is ever dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis import Redis

RELAY_GROUP = "cronlease-relay"


@dataclass(frozen=True)
class OutboxEntry:
    entry_id: str
    fields: dict[str, str]


@dataclass(frozen=True)
class OutboxFigures:
    length: int  # entries in the stream (acknowledged ones are trimmed soon after)
    waiting: int  # not yet acknowledged: pending + not yet read
    oldest_age_s: float | None  # of the oldest run not acknowledged; None: nothing waits


class Outbox:
    """One queue's outbox stream, read by this replica's relay."""

    def __init__(self, client: Redis, key: str, consumer: str) -> None:
        self._client = client
        self.key = key
        self._consumer = consumer
        self._claim_cursor = "0-0"

    def ensure_group(self) -> None:
        """Create the group (and the stream) if missing; it starts at the first entry, so runs
        written before any relay ran are delivered too."""
        try:
            self._client.xgroup_create(self.key, RELAY_GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def own_pending(self, count: int) -> list[OutboxEntry]:
        """Runs this consumer read before and did not acknowledge (oldest first)."""
        return self._read("0", count, None)

    def claim_stale(self, count: int, min_idle_ms: int) -> list[OutboxEntry]:
        """Runs another consumer (a dead or demoted leader) left pending for min_idle_ms."""
        reply = self._client.xautoclaim(
            self.key,
            RELAY_GROUP,
            self._consumer,
            min_idle_time=min_idle_ms,
            start_id=self._claim_cursor,
            count=count,
        )
        self._claim_cursor = _text(reply[0])
        return [_entry(item) for item in reply[1] if item and item[1] is not None]

    def read_new(self, count: int, block_ms: int) -> list[OutboxEntry]:
        return self._read(">", count, block_ms)

    def acknowledge(self, entry_ids: Sequence[str]) -> None:
        """XACK, then trim below the oldest entry still unacknowledged (or not yet read)."""
        if not entry_ids:
            return
        self._client.xack(self.key, RELAY_GROUP, *entry_ids)
        self._trim()

    def figures(self, redis_now_s: float) -> OutboxFigures:
        pipe = self._client.pipeline(transaction=False)
        pipe.xlen(self.key)
        pipe.xpending(self.key, RELAY_GROUP)
        pipe.xinfo_groups(self.key)
        length, pending, groups = pipe.execute(raise_on_error=False)
        length = length if isinstance(length, int) else 0
        oldest = _oldest_unacknowledged(pending, groups, self._client, self.key)
        waiting = _waiting(pending, groups)
        age = None if oldest is None else max(0.0, redis_now_s - _id_ms(oldest) / 1000)
        return OutboxFigures(length, waiting, age)

    def _read(self, start: str, count: int, block_ms: int | None) -> list[OutboxEntry]:
        reply: Any = self._client.xreadgroup(
            RELAY_GROUP, self._consumer, {self.key: start}, count=count, block=block_ms
        )
        entries: list[OutboxEntry] = []
        for _, items in reply or ():
            # A pending entry trimmed away reads back as (id, None): nothing to deliver.
            entries += [_entry(item) for item in items if item[1]]
        return entries

    def _trim(self) -> None:
        pending = self._client.xpending(self.key, RELAY_GROUP)
        groups = self._client.xinfo_groups(self.key)
        oldest = _oldest_unacknowledged(pending, groups, self._client, self.key)
        if oldest is None:  # everything read is acknowledged: keep only what is unread
            last = _group(groups).get("last-delivered-id")
            if last is None:
                return
            oldest = _successor(_text(last))
        self._client.xtrim(self.key, minid=oldest, approximate=False)


def _oldest_unacknowledged(pending: Any, groups: Any, client: Redis, key: str) -> str | None:
    """The id of the oldest entry not acknowledged: pending in the group, else the first one
    the group has not read yet; None when nothing waits."""
    if isinstance(pending, dict) and pending.get("pending"):
        return _text(pending["min"])
    last = _group(groups).get("last-delivered-id")
    after = "-" if last is None else "(" + _text(last)
    unread = client.xrange(key, min=after, count=1)
    return _text(unread[0][0]) if unread else None


def _waiting(pending: Any, groups: Any) -> int:
    group = _group(groups)
    pending_count = int(pending.get("pending") or 0) if isinstance(pending, dict) else 0
    lag = group.get("lag")
    return pending_count + (int(lag) if lag is not None else 0)


def _group(groups: Any) -> dict[str, Any]:
    if isinstance(groups, list):
        for group in groups:
            if isinstance(group, dict) and _text(group.get("name")) == RELAY_GROUP:
                return group
    return {}


def _successor(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _id_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _entry(item: Any) -> OutboxEntry:
    entry_id, fields = item
    return OutboxEntry(_text(entry_id), {_text(k): _text(v) for k, v in fields.items()})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
