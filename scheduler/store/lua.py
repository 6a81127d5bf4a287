"""Every Lua script cronlease runs, in one place: each with its KEYS and ARGV contract.

The typed calls around them are in scheduler/store/scripts.py. All keys share the namespace hash
tag (see keys.py), so each script may touch any of them, on Redis Cluster too.
"""

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
# Howard Hinnant's civil_from_days. tests/store/test_scripts.py checks it against Python's datetime.
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
# KEYS[1] the queue stream   KEYS[2] leader   KEYS[3] epoch
# ARGV: run_id, schedule, job, args, queue, fire_time, fire_ts, enqueued_at, requested by,
#   then (optional) ARGV[10] the events channel
# The run carries the current leader's token, or the epoch without a leader, so tokens never go
# down in a stream. With ARGV[10], the run is announced there (JSON: event "manual", run_id,
# schedule, queue, stream, entry_id, token, by) in the same call, so a notice means the run was
# written; the leader logs it. Tokens stay strings: cjson would print a 16-digit one as a
# rounded float. Returns the entry id.
MANUAL = """
local leader = redis.call('GET', KEYS[2])
local token = redis.call('GET', KEYS[3]) or '0'
if leader then token = string.match(leader, '^(%d+):') or token end
local id = redis.call('XADD', KEYS[1], '*', 'run_id', ARGV[1], 'schedule', ARGV[2],
  'job', ARGV[3], 'args', ARGV[4], 'queue', ARGV[5], 'fire_time', ARGV[6], 'fire_ts', ARGV[7],
  'enqueued_at', ARGV[8], 'trigger', 'manual', 'token', token, 'replica', ARGV[9])
if ARGV[10] then
  redis.call('PUBLISH', ARGV[10], cjson.encode({event = 'manual', run_id = ARGV[1],
    schedule = ARGV[2], queue = ARGV[5], stream = KEYS[1], entry_id = id, token = token,
    by = ARGV[9]}))
end
return id
"""

# BACKFILL: re-offer past fires of one schedule (`cronlease backfill`), one chunk per call,
# outside the cron cursor (it neither reads nor moves it, so the leader's catch-up is unchanged).
# KEYS[1] the queue stream   KEYS[2] leader   KEYS[3] epoch
# ARGV[1] schedule   ARGV[2] job   ARGV[3] args (JSON)   ARGV[4] queue   ARGV[5] requested by
# ARGV[6..] the fire times (Unix seconds), oldest first
# run_id and fire_time are built exactly as ENQUEUE_STREAM builds them (the same rfc3339), so a
# backfilled fire carries the run id its scheduled run had and a worker that deduplicates by
# run id runs only the fires it never ran. trigger is `backfill`; enqueued_at is Redis's TIME
# when the call began; the token is the current leader's, or the epoch without a leader, as
# MANUAL's. The caller refuses fires in Redis's future before the first call.
# Returns {token, then one entry id per fire, in ARGV order}.
BACKFILL = (
    _LUA_RFC3339
    + """
local leader = redis.call('GET', KEYS[2])
local token = redis.call('GET', KEYS[3]) or '0'
if leader then token = string.match(leader, '^(%d+):') or token end
local now = redis.call('TIME')
local enqueued_at = rfc3339(tonumber(now[1])) .. string.format('.%03dZ', math.floor(now[2] / 1000))
local reply = {token}
for i = 6, #ARGV do
  local fire_time = rfc3339(tonumber(ARGV[i])) .. 'Z'
  reply[#reply + 1] = redis.call('XADD', KEYS[1], '*', 'run_id', ARGV[1] .. '@' .. fire_time,
    'schedule', ARGV[1], 'job', ARGV[2], 'args', ARGV[3], 'queue', ARGV[4],
    'fire_time', fire_time, 'fire_ts', ARGV[i], 'enqueued_at', enqueued_at,
    'trigger', 'backfill', 'token', token, 'replica', ARGV[5])
end
return reply
"""
)

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

# SETTLE: a worker's verdict on one delivered run, in one call with its acknowledgement.
# KEYS[1] the queue stream   KEYS[2] per verdict: the run's done key, retry set or dead letters
# ARGV[1] group   ARGV[2] entry id   ARGV[3] verdict `done`, `retry` or `dead`, then:
#   done: ARGV[4] who (the done key's value)   ARGV[5] how long to remember it (s)
#   retry: ARGV[4] delay (ms, from Redis's TIME)   ARGV[5] the next attempt (JSON [f, v, ...])
#   dead: ARGV[4..] the dead letter's fields and values
# Returns 1, or 0 when the entry was no longer pending in the group (a worker that claimed it
# after the visibility timeout settled it first): its retry or dead letter is then NOT written,
# so a run is never doubled. A success is remembered either way: the job did succeed.
SETTLE = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == 'done' then
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
elseif acked == 1 and ARGV[3] == 'retry' then
  local now = redis.call('TIME')
  local due = now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[4])
  redis.call('ZADD', KEYS[2], due, ARGV[5])
elseif acked == 1 then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
end
return acked
"""

# PROMOTE: move the retries that are due back to their stream; each one is removed from the
# set in the call that writes it, so none is doubled or lost, whichever worker gets there first.
# KEYS[1] retry set   KEYS[2] the queue stream   ARGV[1] at most this many
# Returns {moved, the next waiting retry's due time (ms) or -1, Redis's TIME (ms)}.
PROMOTE = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, ARGV[1])
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(member)))
  redis.call('ZREM', KEYS[1], member)
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2] or -1
return {#due, tostring(next_due), tostring(now_ms)}
"""

# REPLAY: dead runs back to their stream as first attempts, each in one step (XADD + XDEL).
# KEYS[1] dead letters   KEYS[2] the queue stream
# ARGV[1] n, ARGV[2..n+1] the fields to drop (the error, the attempts), then dead letters' ids
# Returns the new entry id per id given, '' for an id not (or no longer) there.
REPLAY = """
local drop, n, reply = {}, tonumber(ARGV[1]), {}
for i = 2, n + 1 do drop[ARGV[i]] = true end
for i = n + 2, #ARGV do
  local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  reply[#reply + 1] = ''
  if #found == 1 then
    local fields, kept = found[1][2], {}
    for j = 1, #fields, 2 do
      if not drop[fields[j]] then kept[#kept + 1] = fields[j]; kept[#kept + 1] = fields[j + 1] end
    end
    reply[#reply] = redis.call('XADD', KEYS[2], '*', unpack(kept))
    redis.call('XDEL', KEYS[1], ARGV[i])
  end
end
return reply
"""
