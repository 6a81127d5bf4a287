"""Every Lua script cronlease runs, each with its KEYS/ARGV contract, and typed wrappers.

Scripts are called with EVALSHA; redis-py's Script object reloads a script on NOSCRIPT, which
is what a restarted Redis answers. All keys share the namespace hash tag (see keys.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.commands.core import Script

from scheduler.keys import Keys

# ACQUIRE: take the lease if nobody holds it.
# KEYS[1] leader   KEYS[2] epoch   KEYS[3] generation
# ARGV[1] replica id   ARGV[2] ttl in ms   ARGV[3] a fresh generation id (used if none exists)
# Returns {token, generation, created, pttl, time_s, time_us}:
#   token 0 when the lease is held by someone else (pttl is then its remaining ms);
#   created 1 when this call wrote the generation marker (a new or emptied Redis).
ACQUIRE = """
local created = 0
local generation = redis.call('GET', KEYS[3])
if not generation then
  generation = ARGV[3]
  redis.call('SET', KEYS[3], generation)
  created = 1
end
local now = redis.call('TIME')
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, generation, created, redis.call('PTTL', KEYS[1]), now[1], now[2]}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return {token, generation, created, tonumber(ARGV[2]), now[1], now[2]}
"""

# RENEW: extend our own lease to an ABSOLUTE ttl from now (never adds to what is left).
# KEYS[1] leader
# ARGV[1] our value `<token>:<replica-id>`   ARGV[2] ttl in ms
# Returns {1 if renewed else 0, time_s, time_us}.
RENEW = """
local now = redis.call('TIME')
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, now[1], now[2]}
end
return {0, now[1], now[2]}
"""

# RELEASE: delete the lease only if it is still ours, then tell the followers.
# KEYS[1] leader
# ARGV[1] our value `<token>:<replica-id>`   ARGV[2] the handover channel
# Returns 1 if released, 0 if it was not ours any more.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[1])
  return 1
end
return 0
"""

# ENQUEUE_STREAM: the fenced, de-duplicated, atomic enqueue of a batch of fires.
# KEYS[1] leader   KEYS[2] cursor   KEYS[3] paused   KEYS[4..] the queue streams used
# ARGV[1] our lease value `<token>:<replica-id>`   ARGV[2] token   ARGV[3] replica id
# ARGV[4] number of fires, then per fire 9 values:
#   stream index (1-based into KEYS[4..]), schedule, fire_ts, run_id, job, args, queue,
#   fire_time, enqueued_at + '|' + trigger
# Returns one code per fire: 1 enqueued, 0 duplicate (cursor already at or past fire_ts),
#   2 paused (cursor advanced, nothing written), or a single {-1} when fenced (nothing written).
ENQUEUE_STREAM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {-1}
end
local results = {}
local count = tonumber(ARGV[4])
for i = 0, count - 1 do
  local base = 5 + i * 9
  local schedule = ARGV[base + 1]
  local fire_ts = tonumber(ARGV[base + 2])
  local cursor = tonumber(redis.call('HGET', KEYS[2], schedule))
  if cursor and cursor >= fire_ts then
    results[i + 1] = 0
  elseif redis.call('SISMEMBER', KEYS[3], schedule) == 1 then
    redis.call('HSET', KEYS[2], schedule, fire_ts)
    results[i + 1] = 2
  else
    local tail = ARGV[base + 8]
    local bar = string.find(tail, '|', 1, true)
    redis.call('XADD', KEYS[3 + tonumber(ARGV[base])], '*',
      'run_id', ARGV[base + 3], 'schedule', schedule, 'job', ARGV[base + 4],
      'args', ARGV[base + 5], 'queue', ARGV[base + 6], 'fire_time', ARGV[base + 7],
      'fire_ts', ARGV[base + 2], 'enqueued_at', string.sub(tail, 1, bar - 1),
      'trigger', string.sub(tail, bar + 1), 'token', ARGV[2], 'replica', ARGV[3])
    redis.call('HSET', KEYS[2], schedule, fire_ts)
    results[i + 1] = 1
  end
end
return results
"""

# HEARTBEAT: a replica says it is alive; the leader also publishes its config hash.
# KEYS[1] replicas (zset)   KEYS[2] replica-info (hash)   KEYS[3] leader   KEYS[4] leader-info
# KEYS[5] paused
# ARGV[1] replica id   ARGV[2] its info (JSON)   ARGV[3] our lease value, or '' if following
# ARGV[4] our config hash   ARGV[5] forget replicas silent for this many ms
# Returns {time_s, time_us, leader value or '', leader's config hash or '', paused names...}.
HEARTBEAT = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[5]))
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local leader = redis.call('GET', KEYS[3]) or ''
if ARGV[3] ~= '' and leader == ARGV[3] then
  redis.call('HSET', KEYS[4], 'config_hash', ARGV[4])
end
local reply = {now[1], now[2], leader, redis.call('HGET', KEYS[4], 'config_hash') or ''}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  reply[#reply + 1] = name
end
return reply
"""

# FORGET: the leader drops the cursor and pause flag of schedules removed from the config.
# KEYS[1] leader   KEYS[2] cursor   KEYS[3] paused
# ARGV[1] our lease value, then the names
# Returns the number of cursors removed, or -1 when fenced.
FORGET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local removed = 0
for i = 2, #ARGV do
  removed = removed + redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('SREM', KEYS[3], ARGV[i])
end
return removed
"""

# LEADER_INFO: the new leader records who it is and since when (fenced).
# KEYS[1] leader   KEYS[2] leader-info
# ARGV[1] our lease value   ARGV[2] token   ARGV[3] replica id   ARGV[4] since (Redis time, s)
# ARGV[5] config hash
# Returns 1, or -1 when fenced.
LEADER_INFO = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'token', ARGV[2], 'replica', ARGV[3], 'since', ARGV[4],
  'config_hash', ARGV[5])
return 1
"""

# MANUAL: one manual run, outside the cron cursor (it neither reads nor moves it).
# KEYS[1] the queue stream   KEYS[2] leader
# ARGV: run_id, schedule, job, args, queue, fire_time, fire_ts, enqueued_at, requested by
# KEYS[3] epoch
# The run carries the current leader's token, or the epoch without a leader, so tokens never go
# down in a stream. Returns the entry id.
MANUAL = """
local leader = redis.call('GET', KEYS[2])
local token = redis.call('GET', KEYS[3]) or '0'
if leader then token = string.match(leader, '^(%d+):') or token end
return redis.call('XADD', KEYS[1], '*', 'run_id', ARGV[1], 'schedule', ARGV[2],
  'job', ARGV[3], 'args', ARGV[4], 'queue', ARGV[5], 'fire_time', ARGV[6], 'fire_ts', ARGV[7],
  'enqueued_at', ARGV[8], 'trigger', 'manual', 'token', token, 'replica', ARGV[9])
"""

FIELDS_PER_FIRE = 9


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
        self._heartbeat: Script = client.register_script(HEARTBEAT)
        self._forget: Script = client.register_script(FORGET)
        self._leader_info: Script = client.register_script(LEADER_INFO)
        self._manual: Script = client.register_script(MANUAL)

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

    def enqueue_stream(
        self,
        lease_value: str,
        token: int,
        replica_id: str,
        streams: Sequence[str],
        fire_args: Sequence[Any],
        fire_count: int,
    ) -> list[int]:
        """Run ENQUEUE_STREAM; `fire_args` is FIELDS_PER_FIRE values per fire (see header)."""
        k = self.keys
        reply = self._enqueue(
            keys=[k.leader, k.cursor, k.paused, *streams],
            args=[lease_value, token, replica_id, fire_count, *fire_args],
        )
        return [int(code) for code in reply]

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
        """XADD a manual run (fields in MANUAL's ARGV order); the entry id."""
        return _text(
            self._manual(keys=[stream, self.keys.leader, self.keys.epoch], args=list(fields))
        )


@dataclass(frozen=True)
class HeartbeatReply:
    redis_time_s: float
    leader_value: str  # '' without a leader
    leader_config_hash: str  # '' if unknown
    paused: frozenset[str]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
