"""Writing runs into other job systems' queues (Celery, RQ, Sidekiq, arq, Dramatiq, BullMQ).

The target modules (scheduler/targets/) build each run's writes in Python, payloads included;
these scripts only check and store them. An op is `command, key, values...`, the command one of
the few below, each with the type its key must have: every key's type is checked before the
first write, because Redis does not roll a script back, and a wrong-typed key found half-way
would leave some writes done and the cursor behind them (every retry would write them again).
"""

# The commands a target write may use, and the type of key each writes (or finds absent); and
# the walk over one run's writes in ARGV, shared by the scripts below. A run's writes are:
#   guard (index into KEYS of a key that exists once the run is in the target, e.g. RQ's job
#   hash; 0 for none), number of ops, the ops (each: n, command, key index, then n values),
#   then a condition: 0, or the index of a hash key, a field and a second list of ops (count,
#   ops) written INSTEAD when that field exists (BullMQ 5: a paused queue's runs go to its
#   paused list).
_LUA_OPS = """
local wants = {LPUSH = 'list', RPUSH = 'list', HSET = 'hash', SADD = 'set', ZADD = 'zset',
  PSETEX = 'string', SET = 'string', INCR = 'string', XADD = 'stream'}
local function skip_ops(at, count)
  for _ = 1, count do at = at + 3 + tonumber(ARGV[at]) end
  return at
end
-- One run's writes starting at ARGV[at] -> a table of where its parts are; and the next index.
local function parse_run(at)
  local run = {guard = tonumber(ARGV[at]), ops = tonumber(ARGV[at + 1]), first = at + 2}
  at = skip_ops(at + 2, run.ops)
  run.cond = tonumber(ARGV[at])
  at = at + 1
  if run.cond > 0 then
    run.field, run.alt_ops, run.alt_first = ARGV[at], tonumber(ARGV[at + 1]), at + 2
    at = skip_ops(at + 2, run.alt_ops)
  end
  return run, at
end
-- Calls visit(key index, type wanted) for every key the run may write, either branch.
local function each_key(run, visit)
  local function walk(p, count)
    for _ = 1, count do
      local want = wants[ARGV[p + 1]]
      if not want then
        error('cronlease: ' .. tostring(ARGV[p + 1]) .. ' is not a target write')
      end
      visit(tonumber(ARGV[p + 2]), want)
      p = p + 3 + tonumber(ARGV[p])
    end
  end
  walk(run.first, run.ops)
  if run.cond > 0 then
    visit(run.cond, 'hash')
    walk(run.alt_first, run.alt_ops)
  end
end
local function apply(run)
  local p, count = run.first, run.ops
  if run.cond > 0 and redis.call('HEXISTS', KEYS[run.cond], run.field) == 1 then
    p, count = run.alt_first, run.alt_ops
  end
  for _ = 1, count do
    local n = tonumber(ARGV[p])
    redis.call(ARGV[p + 1], KEYS[tonumber(ARGV[p + 2])], unpack(ARGV, p + 3, p + 2 + n))
    p = p + 3 + n
  end
end
"""

# ENQUEUE_TARGET: ENQUEUE_STREAM's fenced, de-duplicated, atomic enqueue, for runs whose queue
# is another system's: the same fence, cursor, pause and never-early rules, the same codes.
# KEYS[1] leader   KEYS[2] cursor   KEYS[3] paused   KEYS[4..] every target key the call touches
# ARGV[1] our lease value `<token>:<replica-id>`   ARGV[2] the scheduler's own db
# ARGV[3] the target's db, '' when it is the scheduler's (SELECT inside a script changes only the
#   script's db since Redis 2.8.12; the cursor is written after SELECTing ARGV[2] back)
# ARGV[4] number of fires, then per fire: schedule, fire_ts, then its writes (see _LUA_OPS)
# Returns -1 when fenced, -2 when too early (nothing written in either case), else {time_s,
#   time_us, then one code per fire: 1 enqueued, 0 duplicate (cursor at or past fire_ts, or the
#   guard key exists: the run is in the target already; the cursor is then moved up to it),
#   2 paused (cursor advanced, nothing written), 3 refused (a key its writes may touch holds
#   another type than they write: cursor unmoved, nothing written for it)}.
ENQUEUE_TARGET = (
    _LUA_OPS
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local count = tonumber(ARGV[4])
local fires, names, at = {}, {}, 5
for i = 1, count do
  local schedule, ts_text = ARGV[at], ARGV[at + 1]
  local fire
  fire, at = parse_run(at + 2)
  fire.schedule, fire.ts, fire.ts_text = schedule, tonumber(ts_text), ts_text
  fires[i] = fire
  names[i] = schedule
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
  local fire = fires[i]
  each_key(fire, function(k, want)
    local kind = kind_of(k)
    if kind ~= 'none' and kind ~= want then fire.refused = true end
  end)
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
      apply(fire)
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

# WRITE_RUNS: runs an operator asked for (`cronlease trigger`, `backfill`, the page's "trigger
# now") into a target queue, outside the cron cursor (as MANUAL and BACKFILL for streams: neither
# read nor moved). Unfenced, as those are: an operator's run needs no lease.
# KEYS[1] leader   KEYS[2] epoch   KEYS[3..] every target key the call touches
# ARGV[1] the token the runs' payloads carry   ARGV[2] the target's db, '' for the caller's
# ARGV[3] number of runs, then per run its writes (see _LUA_OPS)
# The payloads are built in Python, token included, so the script cannot take the token itself
# as MANUAL does: it checks that ARGV[1] is still what MANUAL would take now (the lease's token,
# else the epoch, else '0'), so a lease acquired between the caller's read and this call never
# leaves a run with an older token behind the new leader's runs.
# Returns {-4, the token now} when ARGV[1] is not it any more (nothing written: rebuild, resend);
#   {-3, key, its type, the type wanted} when a key holds another type than its command writes
#   (nothing written); else one code per run: 1 written, 0 already there (its guard key exists:
#   nothing written for it).
WRITE_RUNS = (
    _LUA_OPS
    + """
local leader = redis.call('GET', KEYS[1])
local token = redis.call('GET', KEYS[2]) or '0'
if leader then token = string.match(leader, '^(%d+):') or token end
if token ~= ARGV[1] then return {-4, token} end
if ARGV[2] ~= '' then redis.call('SELECT', ARGV[2]) end
local runs, at = {}, 4
local wrong = nil
for i = 1, tonumber(ARGV[3]) do
  runs[i], at = parse_run(at)
  each_key(runs[i], function(k, want)
    local kind = redis.call('TYPE', KEYS[k])['ok']
    if not wrong and kind ~= 'none' and kind ~= want then wrong = {-3, KEYS[k], kind, want} end
  end)
  if wrong then return wrong end
end
local results = {}
for i, run in ipairs(runs) do
  if run.guard > 0 and redis.call('EXISTS', KEYS[run.guard]) == 1 then
    results[i] = 0
  else
    apply(run)
    results[i] = 1
  end
end
return results
"""
)

# QUEUE_LENGTHS: how many runs wait in target queues, for the queue-length gauges and `status`.
# KEYS[1..] the keys   ARGV[1] their db, '' for the caller's   ARGV[2..] per key: list, zset or
#   stream (a relayed queue's outbox)
# Returns one size per key (0 for an absent key or one of another type).
QUEUE_LENGTHS = """
if ARGV[1] ~= '' then redis.call('SELECT', ARGV[1]) end
local sizes = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'list' and ARGV[i + 1] == 'list' then
    sizes[i] = redis.call('LLEN', key)
  elseif kind == 'zset' and ARGV[i + 1] == 'zset' then
    sizes[i] = redis.call('ZCARD', key)
  elseif kind == 'stream' and ARGV[i + 1] == 'stream' then
    sizes[i] = redis.call('XLEN', key)
  else
    sizes[i] = 0
  end
end
return sizes
"""
