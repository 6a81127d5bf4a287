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
# ARGV[4] N, number of fires   ARGV[5] G, number of groups, then per group 5 values:
#   stream index (1-based into KEYS[4..]), queue, trigger (`scheduled` or `catchup`), fire_ts,
#   fires in the group
# then three columns of N values each, the fires group after group: schedule, job, args (JSON).
# A group is the fires of one (fire_ts, stream, trigger); groups come oldest fire_ts first, so a
# schedule's fires are handled oldest first, as the cursor needs.
# Writes run_id, fire_time and enqueued_at itself: enqueued_at is Redis's TIME when the call
# began (all runs of one call share it; a call is at most a few ms of work); fire_time once per
# fire_ts, by the rfc3339 BACKFILL uses too, so both give a fire the same run id.
# Never early: a fire whose second Redis's own clock has not reached refuses the whole call.
# Returns -1 when fenced (nothing written), -2 when too early (nothing written), else {time_s,
#   time_us, then a (position, code) pair for each fire NOT enqueued, position 1-based in column
#   order: 0 duplicate (cursor already at or past fire_ts), 2 paused (cursor advanced, nothing
#   written), 3 refused: its queue's key holds another type than a stream (cursor not moved,
#   nothing written; the fires of other queues in the call are written as usual)}; a fire with
#   no pair was enqueued (code 1).
# Cursors are read with one HMGET and written with one HSET per call, not per fire; a cursor
# text is turned into a number once per distinct text (strtod is a good part of a fire's cost).
# Every check (key types included) comes before the first write: Redis does not roll a script
# back, so an error after an XADD would keep that XADD while the cursor stays behind it, and
# every retry would write it again.
ENQUEUE_STREAM = (
    _LUA_RFC3339
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local count, groups = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = redis.call('TIME')
local now_s = tonumber(now[1])
for g = 0, groups - 1 do
  if tonumber(ARGV[9 + g * 5]) > now_s then
    return -2
  end
end
local refused = {}
for k = 4, #KEYS do
  local kind = redis.call('TYPE', KEYS[k])['ok']
  refused[k] = kind ~= 'stream' and kind ~= 'none'
end
local paused = false
if redis.call('SCARD', KEYS[3]) > 0 then
  paused = {}
  for _, name in ipairs(redis.call('SMEMBERS', KEYS[3])) do paused[name] = true end
end
local enqueued_at = rfc3339(now_s) .. string.format('.%03dZ', math.floor(now[2] / 1000))
local names = 5 + groups * 5
local jobs, args = names + count, names + 2 * count
local stored = redis.call('HMGET', KEYS[2], unpack(ARGV, names + 1, names + count))
local cursor, number, fire_times = {}, {}, {}
local moved, n = {}, 0
local results, m = {now[1], now[2]}, 2
local token, replica = ARGV[2], ARGV[3]
-- Locals, not globals, in the loop: each global is a table lookup, and a fire takes ~15.
local argv, call = ARGV, redis.call
local j = 0
for g = 0, groups - 1 do
  local at = 6 + g * 5
  local k = 3 + tonumber(argv[at])
  local key, queue, trigger, fire_ts_text = KEYS[k], argv[at + 1], argv[at + 2], argv[at + 3]
  local fire_ts = tonumber(fire_ts_text)
  local fire_time = fire_times[fire_ts]
  if not fire_time then
    fire_time = rfc3339(fire_ts) .. 'Z'
    fire_times[fire_ts] = fire_time
  end
  local suffix = '@' .. fire_time
  local wrong = refused[k]
  for _ = 1, tonumber(argv[at + 4]) do
    j = j + 1
    local schedule = argv[names + j]
    local last = cursor[schedule]
    if last == nil then
      local text = stored[j]
      if text then
        last = number[text]
        if last == nil then
          last = tonumber(text)
          number[text] = last
        end
      end
    end
    if last and last >= fire_ts then
      results[m + 1] = j
      results[m + 2] = 0
      m = m + 2
    elseif wrong then
      results[m + 1] = j
      results[m + 2] = 3
      m = m + 2
    else
      cursor[schedule] = fire_ts
      moved[n + 1] = schedule
      moved[n + 2] = fire_ts_text
      n = n + 2
      if paused and paused[schedule] then
        results[m + 1] = j
        results[m + 2] = 2
        m = m + 2
      else
        call('XADD', key, '*', 'run_id', schedule .. suffix, 'schedule', schedule,
          'job', argv[jobs + j], 'args', argv[args + j], 'queue', queue,
          'fire_time', fire_time, 'fire_ts', fire_ts_text, 'enqueued_at', enqueued_at,
          'trigger', trigger, 'token', token, 'replica', replica)
      end
    end
  end
end
if n > 0 then
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
