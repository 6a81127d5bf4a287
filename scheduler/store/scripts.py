"""Every Lua script cronlease runs, each with its KEYS/ARGV contract, and typed wrappers.

Scripts are called with EVALSHA; redis-py's Script object reloads a script on NOSCRIPT, which
is what a restarted Redis answers. All keys share the namespace hash tag (see keys.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

from scheduler.core.runs import Lease
from scheduler.store.keys import Keys

# ACQUIRE: take the lease if nobody holds it.
# KEYS[1] leader   KEYS[2] epoch   KEYS[3] generation
# ARGV[1] replica id   ARGV[2] ttl in ms   ARGV[3] a fresh generation id (used if none exists)
# Returns {token, generation, created, pttl, time_s, time_us}:
#   token 0 when the lease is held by someone else (pttl is then its remaining ms);
#   created 1 when this call wrote the generation marker (a new or emptied Redis).
# A new (or emptied) store starts the epoch at Redis's TIME in microseconds rather than at 0, so
# a fencing token is never handed out twice even when Redis lost everything (a restart without
# persistence, a switch of redis-server binaries): each acquisition is a round trip, so fewer
# than one happens per microsecond, and the tokens of a later store start above those of any
# earlier one. (Exact in Lua's doubles and in Prometheus until the year 2255.)
ACQUIRE = """
local now = redis.call('TIME')
local created = 0
local generation = redis.call('GET', KEYS[3])
if not generation then
  generation = ARGV[3]
  redis.call('SET', KEYS[3], generation)
  created = 1
  local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
  if (tonumber(redis.call('GET', KEYS[2])) or 0) < floor then
    redis.call('SET', KEYS[2], string.format('%d', floor))
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, generation, created, redis.call('PTTL', KEYS[1]), now[1], now[2]}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], string.format('%d', token) .. ':' .. ARGV[1], 'PX', ARGV[2])
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

# RFC 3339 in Lua (Redis scripts have no os.date): Unix seconds -> 2026-11-22T02:00:00, by
# Howard Hinnant's civil_from_days. tests/test_scripts.py checks it against Python's datetime.
_LUA_RFC3339 = """
local function rfc3339(t)
  local days = math.floor(t / 86400)
  local secs = t - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d', year, month, day,
    math.floor(secs / 3600), math.floor(secs / 60) % 60, secs % 60)
end
"""

# ENQUEUE_STREAM: the fenced, de-duplicated, atomic enqueue of a batch of fires.
# KEYS[1] leader   KEYS[2] cursor   KEYS[3] paused   KEYS[4..] the queue streams used
# ARGV[1] our lease value `<token>:<replica-id>`   ARGV[2] token   ARGV[3] replica id
# ARGV[4] number of fires, then per fire 7 values:
#   stream index (1-based into KEYS[4..]), schedule, job, args (JSON), queue, fire_ts,
#   trigger (`scheduled` or `catchup`)
# Writes run_id, fire_time and enqueued_at itself: enqueued_at is Redis's TIME when the call
# began (all runs of one call share it; a call is at most a few ms of work).
# Never early: a fire whose second Redis's own clock has not reached refuses the whole call.
# Returns -1 when fenced (nothing written), -2 when too early (nothing written), else {time_s,
#   time_us, then one code per fire:
#   1 enqueued, 0 duplicate (cursor already at or past fire_ts), 2 paused (cursor advanced,
#   nothing written), 3 refused: its queue's key holds another type than a stream (cursor not
#   moved, nothing written; the fires of other queues in the call are written as usual)}.
# Cursors are read with one HMGET and written with one HSET per call, not per fire.
# Every check (key types included) comes before the first write: Redis does not roll a script
# back, so an error after an XADD would keep that XADD while the cursor stays behind it, and
# every retry would write it again.
ENQUEUE_STREAM = (
    _LUA_RFC3339
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local count = tonumber(ARGV[4])
local names = {}
for i = 0, count - 1 do
  names[i + 1] = ARGV[6 + i * 7]
end
local stored = redis.call('HMGET', KEYS[2], unpack(names))
local cursor = {}
for i = 1, count do
  if stored[i] then cursor[names[i]] = tonumber(stored[i]) end
end
local paused = {}
if redis.call('SCARD', KEYS[3]) > 0 then
  for _, name in ipairs(redis.call('SMEMBERS', KEYS[3])) do paused[name] = true end
end
local now = redis.call('TIME')
for i = 0, count - 1 do
  if tonumber(ARGV[10 + i * 7]) > tonumber(now[1]) then
    return -2
  end
end
local refused = {}
for k = 4, #KEYS do
  local kind = redis.call('TYPE', KEYS[k])['ok']
  if kind ~= 'stream' and kind ~= 'none' then refused[k - 3] = true end
end
local enqueued_at = rfc3339(tonumber(now[1])) .. string.format('.%03dZ', math.floor(now[2] / 1000))
local fire_times = {}
local results = {now[1], now[2]}
local moved = {}
for i = 0, count - 1 do
  local base = 5 + i * 7
  local schedule = ARGV[base + 1]
  local fire_ts = tonumber(ARGV[base + 5])
  local last = cursor[schedule]
  if last and last >= fire_ts then
    results[i + 3] = 0
  elseif refused[tonumber(ARGV[base])] then
    results[i + 3] = 3
  else
    cursor[schedule] = fire_ts
    moved[#moved + 1] = schedule
    moved[#moved + 1] = ARGV[base + 5]
    if paused[schedule] then
      results[i + 3] = 2
    else
      local fire_time = fire_times[fire_ts]
      if not fire_time then
        fire_time = rfc3339(fire_ts) .. 'Z'
        fire_times[fire_ts] = fire_time
      end
      redis.call('XADD', KEYS[3 + tonumber(ARGV[base])], '*',
        'run_id', schedule .. '@' .. fire_time, 'schedule', schedule, 'job', ARGV[base + 2],
        'args', ARGV[base + 3], 'queue', ARGV[base + 4], 'fire_time', fire_time,
        'fire_ts', ARGV[base + 5], 'enqueued_at', enqueued_at, 'trigger', ARGV[base + 6],
        'token', ARGV[2], 'replica', ARGV[3])
      results[i + 3] = 1
    end
  end
end
if #moved > 0 then
  redis.call('HSET', KEYS[2], unpack(moved))
end
return results
"""
)

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

# ADVANCE_CURSORS: raise cursors to at least a position (creating missing ones), fenced. A leader
# records where it starts serving a schedule that has no cursor (or restarts one a reload
# changed), so the next leader resumes from there instead of from its own "now".
# KEYS[1] leader   KEYS[2] cursor
# ARGV[1] our lease value, then pairs: schedule name, position (Unix seconds)
# Returns the number of cursors written, or -1 when fenced.
ADVANCE_CURSORS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local written = 0
for i = 2, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[2], ARGV[i]))
  if not current or current < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    written = written + 1
  end
end
return written
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
        self._enqueue_keys = (keys.leader, keys.cursor, keys.paused)
        self._client = client
        self._heartbeat: Script = client.register_script(HEARTBEAT)
        self._forget: Script = client.register_script(FORGET)
        self._leader_info: Script = client.register_script(LEADER_INFO)
        self._manual: Script = client.register_script(MANUAL)
        self._advance: Script = client.register_script(ADVANCE_CURSORS)
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
        encoding costs about a microsecond per argument, seven arguments per fire."""
        head = (lease.value, lease.token, lease.replica_id)
        sha, keys = self._enqueue.sha, self._enqueue_keys
        commands = [
            ("EVALSHA", sha, 3 + len(c.streams), *keys, *c.streams, *head, c.count, *c.fire_args)
            for c in calls
        ]
        if self._packer is None:  # a cluster client routes each call itself
            return EnqueueBatch(commands, None)
        return EnqueueBatch(commands, [self._packer.pack_command(*c) for c in commands])

    def run_enqueue(self, batch: EnqueueBatch) -> list[EnqueueReply]:
        """Send every call on one connection before reading any reply: Redis works on the first
        while the rest are still on the wire. NOSCRIPT (a restarted or flushed Redis): load the
        script once and resend only the calls that missed it."""
        replies = self._pipelined(batch.commands, batch.packed)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            self._client.script_load(ENQUEUE_STREAM)
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
        return [_enqueue_reply(reply) for reply in replies]

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
            for name, position in items[start : start + ADVANCE_CHUNK]:
                args += (name, position)
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
        """XADD a manual run (fields in MANUAL's ARGV order); the entry id."""
        return _text(
            self._manual(keys=[stream, self.keys.leader, self.keys.epoch], args=list(fields))
        )


@dataclass(frozen=True)
class EnqueueCall:
    streams: Sequence[str]  # KEYS[4..]
    fire_args: Sequence[Any]  # 7 values per fire, in ENQUEUE_STREAM's ARGV order
    count: int


@dataclass(frozen=True)
class EnqueueBatch:
    commands: list[tuple[Any, ...]]
    packed: list[list[bytes]] | None  # the same, RESP-encoded, when the client allows it


@dataclass(frozen=True)
class EnqueueReply:
    fenced: bool
    codes: list[int]
    enqueued_at_s: float  # Redis time when the call began (0 when fenced)


TOO_EARLY = -2
ADVANCE_CHUNK = 5000
EARLY_RETRIES = 200
EARLY_PAUSE_S = 0.005


def _enqueue_reply(reply: Any) -> EnqueueReply:
    if isinstance(reply, Exception):
        raise reply
    if reply == TOO_EARLY:
        raise RedisError("Redis's clock stayed behind the batch's fire time for a second")
    if not isinstance(reply, list):
        return EnqueueReply(True, [], 0.0)
    sec, usec, *codes = reply
    return EnqueueReply(False, [int(code) for code in codes], int(sec) + int(usec) / 1e6)


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
