"""Writing runs into other job systems' queues (Celery, RQ, Sidekiq, arq, Dramatiq, BullMQ).

The target modules (scheduler/targets/) build each run's writes in Python, payloads included;
these scripts only check and store them. An op is `command, key, values...`, the command one of
the few below, each with the type its key must have: every key's type is checked before the
first write, because Redis does not roll a script back, and a wrong-typed key found half-way
would leave some writes done and the cursor behind them (every retry would write them again).
"""

# The commands a target write may use, and the type of key each writes (or finds absent).
_LUA_WANTS = """
local wants = {LPUSH = 'list', RPUSH = 'list', HSET = 'hash', SADD = 'set', ZADD = 'zset',
  PSETEX = 'string', SET = 'string', INCR = 'string', XADD = 'stream'}
"""

# ENQUEUE_TARGET: ENQUEUE_STREAM's fenced, de-duplicated, atomic enqueue, for runs whose queue
# is another system's: the same fence, cursor, pause and never-early rules, the same codes.
# KEYS[1] leader   KEYS[2] cursor   KEYS[3] paused   KEYS[4..] every target key the call touches
# ARGV[1] our lease value `<token>:<replica-id>`   ARGV[2] the scheduler's own db
# ARGV[3] the target's db, '' when it is the scheduler's (SELECT inside a script changes only the
#   script's db since Redis 2.8.12; the cursor is written after SELECTing ARGV[2] back)
# ARGV[4] number of fires, then per fire:
#   schedule, fire_ts, guard (index into KEYS of a key that exists once the run is in the
#   target, e.g. RQ's job hash; 0 for none), number of ops, then per op:
#   n, command, key index (into KEYS), then n values
# Returns -1 when fenced, -2 when too early (nothing written in either case), else {time_s,
#   time_us, then one code per fire: 1 enqueued, 0 duplicate (cursor at or past fire_ts, or the
#   guard key exists: the run is in the target already; the cursor is then moved up to it),
#   2 paused (cursor advanced, nothing written), 3 refused (a key of its ops holds another type
#   than its command writes: cursor unmoved, nothing written for it)}.
ENQUEUE_TARGET = (
    _LUA_WANTS
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local count = tonumber(ARGV[4])
local fires, names, at = {}, {}, 5
for i = 1, count do
  local fire = {schedule = ARGV[at], ts = tonumber(ARGV[at + 1]), ts_text = ARGV[at + 1],
    guard = tonumber(ARGV[at + 2]), ops = tonumber(ARGV[at + 3]), first = at + 4}
  at = at + 4
  for _ = 1, fire.ops do at = at + 3 + tonumber(ARGV[at]) end
  fires[i] = fire
  names[i] = fire.schedule
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
for i = 1, count do
  if fires[i].ts > tonumber(now[1]) then
    return -2
  end
end
if ARGV[3] ~= '' then redis.call('SELECT', ARGV[3]) end
local kinds = {}
local function kind_of(k)
  local kind = kinds[k]
  if not kind then
    kind = redis.call('TYPE', KEYS[k])['ok']
    kinds[k] = kind
  end
  return kind
end
for i = 1, count do
  local fire, p = fires[i], fires[i].first
  for _ = 1, fire.ops do
    local want = wants[ARGV[p + 1]]
    if not want then
      return redis.error_reply('cronlease: ' .. tostring(ARGV[p + 1]) .. ' is not a target write')
    end
    local kind = kind_of(tonumber(ARGV[p + 2]))
    if kind ~= 'none' and kind ~= want then fire.refused = true end
    p = p + 3 + tonumber(ARGV[p])
  end
end
local results = {now[1], now[2]}
local moved = {}
for i = 1, count do
  local fire = fires[i]
  local last = cursor[fire.schedule]
  if last and last >= fire.ts then
    results[i + 2] = 0
  elseif fire.refused then
    results[i + 2] = 3
  else
    cursor[fire.schedule] = fire.ts
    moved[#moved + 1] = fire.schedule
    moved[#moved + 1] = fire.ts_text
    if paused[fire.schedule] then
      results[i + 2] = 2
    elseif fire.guard > 0 and kind_of(fire.guard) ~= 'none' then
      results[i + 2] = 0
    else
      local p = fire.first
      for _ = 1, fire.ops do
        local n = tonumber(ARGV[p])
        redis.call(ARGV[p + 1], KEYS[tonumber(ARGV[p + 2])], unpack(ARGV, p + 3, p + 2 + n))
        p = p + 3 + n
      end
      results[i + 2] = 1
    end
  end
end
if ARGV[3] ~= '' then redis.call('SELECT', ARGV[2]) end
if #moved > 0 then
  redis.call('HSET', KEYS[2], unpack(moved))
end
return results
"""
)

# WRITE_RUNS: runs an operator asked for (`cronlease run-now`, `backfill`) into a target queue,
# outside the cron cursor (as MANUAL and BACKFILL for streams: neither read nor moved).
# KEYS[1..] every target key the call touches
# ARGV[1] the target's db, '' for the caller's   ARGV[2] number of runs, then per run:
#   guard (index into KEYS, 0 for none), number of ops, then per op: n, command, key index, n values
# Returns {-3, key} when a key holds another type than its command writes (nothing written),
#   else one code per run: 1 written, 0 already there (its guard key exists: nothing written).
WRITE_RUNS = (
    _LUA_WANTS
    + """
if ARGV[1] ~= '' then redis.call('SELECT', ARGV[1]) end
local runs, at = {}, 3
for i = 1, tonumber(ARGV[2]) do
  local run = {guard = tonumber(ARGV[at]), ops = tonumber(ARGV[at + 1]), first = at + 2}
  at = at + 2
  for _ = 1, run.ops do
    local want = wants[ARGV[at + 1]]
    local kind = redis.call('TYPE', KEYS[tonumber(ARGV[at + 2])])['ok']
    if not want then
      return redis.error_reply('cronlease: ' .. tostring(ARGV[at + 1]) .. ' is not a target write')
    end
    if kind ~= 'none' and kind ~= want then
      return {-3, KEYS[tonumber(ARGV[at + 2])]}
    end
    at = at + 3 + tonumber(ARGV[at])
  end
  runs[i] = run
end
local results = {}
for i, run in ipairs(runs) do
  if run.guard > 0 and redis.call('EXISTS', KEYS[run.guard]) == 1 then
    results[i] = 0
  else
    local p = run.first
    for _ = 1, run.ops do
      local n = tonumber(ARGV[p])
      redis.call(ARGV[p + 1], KEYS[tonumber(ARGV[p + 2])], unpack(ARGV, p + 3, p + 2 + n))
      p = p + 3 + n
    end
    results[i] = 1
  end
end
return results
"""
)
