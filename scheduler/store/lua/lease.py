"""The lease and the replicas' bookkeeping: acquire, renew, release, heartbeats, cursors."""

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
# ARGV[1] our lease value, then pairs: schedule name, position (Unix seconds); each name at most
#   once per call (they come from a mapping), at most 2,000 pairs (Lua's unpack takes ~8,000)
# Returns the number of cursors written, or -1 when fenced.
# One HMGET and one HSET per call, not a HGET and a HSET per schedule: a first leader of
# 100,000 new schedules writes them all at takeover, and each redis.call costs about a
# microsecond on its own.
ADVANCE_CURSORS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local names = {}
for i = 2, #ARGV, 2 do names[#names + 1] = ARGV[i] end
if #names == 0 then
  return 0
end
local current = redis.call('HMGET', KEYS[2], unpack(names))
local moved, m = {}, 0
for j = 1, #names do
  local position = ARGV[2 * j + 1]
  local now = current[j] and tonumber(current[j])
  if not now or now < tonumber(position) then
    moved[m + 1] = names[j]
    moved[m + 2] = position
    m = m + 2
  end
end
if m > 0 then
  redis.call('HSET', KEYS[2], unpack(moved))
end
return m / 2
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


# LEAVE: a replica that stops cleanly removes its heartbeat, so `status` lists only replicas
# that run or vanished (STALE means "did not stop cleanly").
# KEYS[1] replicas (zset)   KEYS[2] replica-info (hash)
# ARGV[1] replica id
# Returns 1 if it was listed, 0 if not.
LEAVE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return removed
"""
