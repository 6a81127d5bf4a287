"""The worker's scripts: settle a run, promote due retries, replay dead letters."""

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
