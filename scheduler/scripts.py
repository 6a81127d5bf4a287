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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
