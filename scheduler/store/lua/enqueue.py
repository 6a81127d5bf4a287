"""Writing runs: the fenced, de-duplicated enqueue of a batch, and the operator's runs."""

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
