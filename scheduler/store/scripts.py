"""Typed calls of the Lua scripts (their text and KEYS/ARGV contracts: scheduler/store/lua/).

Scripts are called with EVALSHA; redis-py's Script object reloads a script on NOSCRIPT, which
is what a restarted Redis answers. All keys share the namespace hash tag (see keys.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

from scheduler.core.runs import Lease
from scheduler.store.keys import Keys
from scheduler.store.lua import (
    ACQUIRE,
    ADVANCE_CURSORS,
    BACKFILL,
    ENQUEUE_STREAM,
    ENQUEUE_TARGET,
    FORGET,
    HEARTBEAT,
    LEADER_INFO,
    LEAVE,
    MANUAL,
    RELEASE,
    RENEW,
)


@dataclass(frozen=True)
class AcquireReply:
    token: int  # 0: someone else holds the lease
    generation: str
    generation_created: bool
    pttl_ms: int
    redis_time_s: float


@dataclass(frozen=True)
class RenewReply:
    renewed: bool
    redis_time_s: float


class Scripts:
    """The registered scripts of one client, with typed calls."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self.keys = keys
        self._acquire: Script = client.register_script(ACQUIRE)
        self._renew: Script = client.register_script(RENEW)
        self._release: Script = client.register_script(RELEASE)
        self._enqueue: Script = client.register_script(ENQUEUE_STREAM)
        self._enqueue_target: Script = client.register_script(ENQUEUE_TARGET)
        self._enqueue_keys = (keys.leader, keys.cursor, keys.paused)
        self._client = client
        self._heartbeat: Script = client.register_script(HEARTBEAT)
        self._forget: Script = client.register_script(FORGET)
        self._leader_info: Script = client.register_script(LEADER_INFO)
        self._manual: Script = client.register_script(MANUAL)
        self._backfill: Script = client.register_script(BACKFILL)
        self._advance: Script = client.register_script(ADVANCE_CURSORS)
        self._leave: Script = client.register_script(LEAVE)
        self._packer = _packer(client)

    def acquire(self, replica_id: str, ttl_ms: int, fresh_generation: str) -> AcquireReply:
        k = self.keys
        token, generation, created, pttl, sec, usec = self._acquire(
            keys=[k.leader, k.epoch, k.generation], args=[replica_id, ttl_ms, fresh_generation]
        )
        return AcquireReply(
            token=int(token),
            generation=_text(generation),
            generation_created=bool(int(created)),
            pttl_ms=int(pttl),
            redis_time_s=int(sec) + int(usec) / 1e6,
        )

    def renew(self, lease_value: str, ttl_ms: int) -> RenewReply:
        ok, sec, usec = self._renew(keys=[self.keys.leader], args=[lease_value, ttl_ms])
        return RenewReply(bool(int(ok)), int(sec) + int(usec) / 1e6)

    def release(self, lease_value: str) -> bool:
        return bool(
            int(self._release(keys=[self.keys.leader], args=[lease_value, self.keys.handover]))
        )

    def enqueue_commands(self, lease: Lease, calls: Sequence[EnqueueCall]) -> EnqueueBatch:
        """ENQUEUE_STREAM calls as commands, RESP-encoded ahead of time (see run_enqueue):
        encoding costs about a microsecond per argument, three per fire and five per group."""
        head = (lease.value, lease.token, lease.replica_id)
        sha, keys = self._enqueue.sha, self._enqueue_keys
        commands = [
            ("EVALSHA", sha, 3 + len(c.streams), *keys, *c.streams, *head, c.count, *c.fire_args)
            for c in calls
        ]
        return self._batch(commands, ENQUEUE_STREAM, sparse=True)

    def target_commands(
        self, lease: Lease, calls: Sequence[TargetCall], own_db: int
    ) -> EnqueueBatch:
        """ENQUEUE_TARGET calls as commands, RESP-encoded ahead of time, as enqueue_commands."""
        sha, keys = self._enqueue_target.sha, self._enqueue_keys
        commands = [
            (
                "EVALSHA",
                sha,
                3 + len(c.keys),
                *keys,
                *c.keys,
                lease.value,
                own_db,
                "" if c.db is None or c.db == own_db else c.db,
                c.count,
                *c.fire_args,
            )
            for c in calls
        ]
        return self._batch(commands, ENQUEUE_TARGET)

    def _batch(
        self, commands: list[tuple[Any, ...]], script: str, sparse: bool = False
    ) -> EnqueueBatch:
        if self._packer is None:  # a cluster client routes each call itself
            return EnqueueBatch(commands, None, script, sparse)
        packed = [self._packer.pack_command(*c) for c in commands]
        return EnqueueBatch(commands, packed, script, sparse)

    def run_enqueue(self, batch: EnqueueBatch) -> list[EnqueueReply]:
        """Send every call on one connection before reading any reply: Redis works on the first
        while the rest are still on the wire. NOSCRIPT (a restarted or flushed Redis): load the
        script once and resend only the calls that missed it."""
        replies = self._pipelined(batch.commands, batch.packed)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            self._client.script_load(batch.script)
            retried = self._pipelined([batch.commands[i] for i in missing], None)
            for index, reply in zip(missing, retried, strict=True):
                replies[index] = reply
        for _ in range(EARLY_RETRIES):
            early = [i for i, reply in enumerate(replies) if reply == TOO_EARLY]
            if not early:
                break
            # Our clock estimate ran ahead of Redis's (it should not: see clock.py): wait a
            # moment and send those calls again; each call is atomic, so nothing is half-done.
            time.sleep(EARLY_PAUSE_S)
            retried = self._pipelined([batch.commands[i] for i in early], None)
            for index, reply in zip(early, retried, strict=True):
                replies[index] = reply
        return [_enqueue_reply(reply, batch.sparse) for reply in replies]

    def _pipelined(
        self, commands: Sequence[tuple[Any, ...]], packed: Sequence[list[bytes]] | None
    ) -> list[Any]:
        pool = getattr(self._client, "connection_pool", None)
        if pool is None:  # a cluster client: route each call by its first key
            return [_call_or_error(self._client, command) for command in commands]
        connection = pool.get_connection()
        try:
            for index, command in enumerate(commands):
                if packed is not None:
                    connection.send_packed_command(packed[index])
                else:
                    connection.send_command(*command)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except NoScriptError as error:
                    replies.append(error)
            return replies
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def heartbeat(
        self,
        replica_id: str,
        info_json: str,
        lease_value: str,
        config_hash: str,
        forget_after_ms: int,
    ) -> HeartbeatReply:
        k = self.keys
        reply = self._heartbeat(
            keys=[k.replicas, k.replica_info, k.leader, k.leader_info, k.paused],
            args=[replica_id, info_json, lease_value, config_hash, forget_after_ms],
        )
        sec, usec, leader, leader_hash, *paused = reply
        return HeartbeatReply(
            int(sec) + int(usec) / 1e6,
            _text(leader),
            _text(leader_hash),
            frozenset(_text(p) for p in paused),
        )

    def forget(self, lease_value: str, names: Sequence[str]) -> int:
        k = self.keys
        return int(self._forget(keys=[k.leader, k.cursor, k.paused], args=[lease_value, *names]))

    def advance_cursors(self, lease_value: str, positions: Mapping[str, int]) -> bool:
        """Raise each named cursor to at least its position; False when fenced. In calls of
        ADVANCE_CHUNK schedules, so 100,000 new schedules do not block Redis in one call."""
        k = self.keys
        items = list(positions.items())
        for start in range(0, len(items), ADVANCE_CHUNK):
            args: list[str | int] = [lease_value]
            args += [value for pair in items[start : start + ADVANCE_CHUNK] for value in pair]
            if int(self._advance(keys=[k.leader, k.cursor], args=args)) < 0:
                return False
        return True

    def leader_info(
        self, lease_value: str, token: int, replica_id: str, since_s: float, config_hash: str
    ) -> bool:
        k = self.keys
        reply = self._leader_info(
            keys=[k.leader, k.leader_info],
            args=[lease_value, token, replica_id, f"{since_s:.3f}", config_hash],
        )
        return int(reply) == 1

    def manual(self, stream: str, fields: Sequence[str]) -> str:
        """XADD a manual run (fields in MANUAL's ARGV order) and announce it on the events
        channel in the same call; the entry id."""
        k = self.keys
        args = [*fields, k.events]
        return _text(self._manual(keys=[stream, k.leader, k.epoch], args=args))

    def backfill(self, stream: str, fields: Sequence[str], fire_ts: Sequence[int]) -> BackfillReply:
        """XADD one chunk of backfill runs in one atomic call (fields: schedule, job, args,
        queue, requested by, in BACKFILL's ARGV order); the token they carry and their entry
        ids. Does not announce: the caller does once, after its last chunk."""
        k = self.keys
        token, *entry_ids = self._backfill(
            keys=[stream, k.leader, k.epoch], args=[*fields, *fire_ts]
        )
        return BackfillReply(_text(token), [_text(entry_id) for entry_id in entry_ids])

    def announce(self, event: str, fields: Mapping[str, str | int]) -> int:
        """Publish an operator notice on the events channel (the leader logs it): for what an
        operator command wrote outside a script that announces it itself (backfill). Pub/sub
        is at most once: the notice is for the log, the stream stays the record. Returns how
        many replicas heard it."""
        notice = json.dumps({**fields, "event": event}, separators=(",", ":"))
        return int(self._client.publish(self.keys.events, notice))

    def leave(self, replica_id: str) -> bool:
        """Remove this replica's heartbeat (a clean stop); True if it was listed."""
        k = self.keys
        return bool(int(self._leave(keys=[k.replicas, k.replica_info], args=[replica_id])))


@dataclass(frozen=True)
class BackfillReply:
    token: str  # text: a 16-digit epoch is exact only as text (see MANUAL)
    entry_ids: list[str]


@dataclass(frozen=True)
class Notice:
    """An operator notice from the events channel: its kind and its other fields, as text."""

    event: str
    fields: Mapping[str, str]


def decode_notice(data: object) -> Notice | None:
    """A notice from a pub/sub message's data; None if it is not one (foreign or malformed)."""
    try:
        value = json.loads(_text(data))
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("event"), str):
        return None
    fields = {str(k): _text(v) for k, v in value.items() if k != "event" and v is not None}
    return Notice(value["event"], fields)


@dataclass(frozen=True)
class EnqueueCall:
    streams: Sequence[str]  # KEYS[4..]
    fire_args: Sequence[Any]  # ENQUEUE_STREAM's ARGV from ARGV[5]: groups, then the columns
    count: int  # fires (ARGV[4])


@dataclass(frozen=True)
class TargetCall:
    keys: Sequence[str]  # KEYS[4..]: every target key the call's ops touch
    db: int | None  # the target's logical db (None: the scheduler's)
    fire_args: Sequence[Any]  # per fire, in ENQUEUE_TARGET's ARGV order
    count: int


@dataclass(frozen=True)
class EnqueueBatch:
    commands: list[tuple[Any, ...]]
    packed: list[list[bytes]] | None  # the same, RESP-encoded, when the client allows it
    script: str = ENQUEUE_STREAM  # the script's text, loaded again on NOSCRIPT
    # Replies name only the fires not enqueued, as (position, code) pairs (ENQUEUE_STREAM's);
    # else one code per fire (ENQUEUE_TARGET's).
    sparse: bool = False


@dataclass(frozen=True)
class EnqueueReply:
    fenced: bool
    codes: list[int]  # one per fire; empty for a sparse reply (see `others`)
    enqueued_at_s: float  # Redis time when the call began (0 when fenced)
    # A sparse reply's fires that were not enqueued: 0-based position in the call -> code.
    others: dict[int, int] = field(default_factory=dict)


TOO_EARLY = -2
ADVANCE_CHUNK = 2000  # ADVANCE_CURSORS unpacks 2 values per schedule; Lua's limit is ~8,000
EARLY_RETRIES = 200
EARLY_PAUSE_S = 0.005


def _enqueue_reply(reply: Any, sparse: bool) -> EnqueueReply:
    if isinstance(reply, Exception):
        raise reply
    if reply == TOO_EARLY:
        raise RedisError("Redis's clock stayed behind the batch's fire time for a second")
    if not isinstance(reply, list):
        return EnqueueReply(True, [], 0.0)
    sec, usec, *codes = reply
    at = int(sec) + int(usec) / 1e6
    if sparse:
        pairs = zip(codes[0::2], codes[1::2], strict=True)
        return EnqueueReply(False, [], at, {int(j) - 1: int(code) for j, code in pairs})
    return EnqueueReply(False, [int(code) for code in codes], at)


def _packer(client: Redis) -> Any:
    """A connection object that is never connected, used only to RESP-encode commands: a batch
    is encoded ahead of its instant without touching the pool, which would try to (re)connect
    and could fail with the batch already taken from the ticker. None for a cluster client."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return None
    try:
        return pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError):  # a connection class we cannot build detached: encode later
        return None


def _call_or_error(client: Any, command: tuple[Any, ...]) -> Any:
    try:
        return client.execute_command(*command)
    except NoScriptError as error:
        return error


@dataclass(frozen=True)
class HeartbeatReply:
    redis_time_s: float
    leader_value: str  # '' without a leader
    leader_config_hash: str  # '' if unknown
    paused: frozenset[str]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
