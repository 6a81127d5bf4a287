"""Writing relayed runs into an in-Redis job system on ANOTHER Redis instance, once each.

The outbox relay (scheduler/targets/relay/remote_redis.py) runs this script on the target's
Redis, not on the scheduler's: the cursor and its fence are not there, so the run's dedup key
takes their place. A run delivered twice (the relay died between this call and its XACK, or a
new leader claimed the batch) finds its dedup key and writes nothing.
"""

from scheduler.store.lua.targets import _LUA_OPS

# REMOTE_WRITE: relayed runs into the target's keys, in order, each at most once.
# KEYS[1..] every key the call touches: each run's dedup key `cronlease:dedup:<run id>`, its
#   guard and its target keys
# ARGV[1] the dedup keys' TTL in seconds (longer than the catch-up window: a run is delivered
#   again at most that long after its fire)
# ARGV[2] number of runs, then per run: the index in KEYS of its dedup key, the dedup key's
#   value (the target's job id), then its writes (see targets.py _LUA_OPS)
# Per run: when its dedup key exists, nothing is written (a duplicate). Else every key its
#   writes touch is type-checked first; then, when its guard key exists, nothing is written
#   (a duplicate: the job is there already), else its writes are done; in both cases the dedup
#   key is set (SET NX EX) after the writes, so a run is never marked delivered unwritten.
# Returns one code per run, in order: 1 written, 0 duplicate; it stops at the first run one of
#   whose keys holds another type than its command writes, appending -3, that key, its type and
#   the type wanted (nothing written for that run nor for any after it).
REMOTE_WRITE = (
    _LUA_OPS
    + """
local ttl = ARGV[1]
local results, at = {}, 3
for i = 1, tonumber(ARGV[2]) do
  local dedup, value = KEYS[tonumber(ARGV[at])], ARGV[at + 1]
  local run
  run, at = parse_run(at + 2)
  if redis.call('EXISTS', dedup) == 1 then
    results[i] = 0
  else
    local wrong = nil
    each_key(run, function(k, want)
      local kind = redis.call('TYPE', KEYS[k])['ok']
      if not wrong and kind ~= 'none' and kind ~= want then wrong = {KEYS[k], kind, want} end
    end)
    if wrong then
      results[i] = -3
      results[i + 1], results[i + 2], results[i + 3] = wrong[1], wrong[2], wrong[3]
      return results
    end
    if run.guard > 0 and redis.call('EXISTS', KEYS[run.guard]) == 1 then
      results[i] = 0
    else
      apply(run)
      results[i] = 1
    end
    redis.call('SET', dedup, value, 'NX', 'EX', ttl)
  end
end
return results
"""
)
