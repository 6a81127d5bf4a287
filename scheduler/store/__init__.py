"""Everything that speaks Redis: keys, Lua scripts, the lease, connections, the embedded server."""
