"""The floor of any enqueue script, for bench/ only (bench/floorkit.py); the daemon never runs it.

A run is one XADD of DESIGN's 11-field entry, and a script pays more for it than a client's bare
XADD does: every value crosses from Lua into a Redis object, and the reply comes back into Lua.
This script XADDs entries and does nothing else, so what it costs Redis is the least a script
that writes runs can cost: ENQUEUE_STREAM's fencing, cursors and formatting are measured above it.
"""

# XADD_FROM_LUA: XADD the given entries of DESIGN's 11 fields, nothing else.
# KEYS[1..] the streams
# ARGV[1..11] the field names   ARGV[12] C, times each entry is written
#   then per entry: its stream (1-based index into KEYS), then its 11 values
# C = 1 measures entries passed in full (each value a Lua string made from the request, as a
# script that took every value from its caller would); one entry with C = N measures what
# redis.call('XADD', ...) itself costs, its arguments already Lua strings. The arguments are
# written out, not unpacked from a table, so nothing but the XADD is measured.
# Returns the number of entries written.
XADD_FROM_LUA = """
local n1, n2, n3, n4, n5, n6, n7, n8, n9, n10, n11 = unpack(ARGV, 1, 11)
local times = tonumber(ARGV[12])
local call, argv, written = redis.call, ARGV, 0
for e = 13, #argv, 12 do
  local key = KEYS[tonumber(argv[e])]
  for _ = 1, times do
    call('XADD', key, '*',
      n1, argv[e + 1], n2, argv[e + 2], n3, argv[e + 3], n4, argv[e + 4],
      n5, argv[e + 5], n6, argv[e + 6], n7, argv[e + 7], n8, argv[e + 8],
      n9, argv[e + 9], n10, argv[e + 10], n11, argv[e + 11])
    written = written + 1
  end
end
return written
"""
