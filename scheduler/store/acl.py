"""The least-privilege Redis ACL rule for cronlease (README "Redis topologies" shows it).

Keys only under the namespace's hash tag, pub/sub only on its channels, and only the commands
cronlease sends: its Lua scripts' commands (Redis checks each `redis.call` against the caller's
ACL too), the daemon's and the operator commands' own, and what redis-py sends on connect.
No admin or dangerous command: `INFO` and `CONFIG GET` (used only by the start-up warnings about
eviction and persistence) are left out, and the daemon says once that it skips those checks.
tests/store/test_topologies.py runs a daemon and every operator command under exactly this rule, and
checks that every command in scheduler/store/lua/ is in it.
"""

from __future__ import annotations

# Called from the Lua scripts (scheduler/store/lua/).
SCRIPT_COMMANDS = (
    "get", "set", "exists", "pttl", "incr", "pexpire", "del", "publish", "time", "type",
    "hget", "hmget", "hset", "hdel",
    "scard", "smembers", "srem",
    "xadd", "zadd", "zrangebyscore", "zrem",
    "xack", "xdel",
)  # fmt: skip
# Only with queues delivered into other job systems (ENQUEUE_TARGET, WRITE_RUNS): SELECT for a
# target in another logical db, and the writes a target module may use (targets/encoding.py).
TARGET_COMMANDS = ("select", "lpush", "rpush", "hset", "sadd", "zadd", "psetex", "set", "incr",
    "xadd", "type", "exists", "llen", "zcard", "hexists")  # fmt: skip
# Sent by the daemon (daemon/, store/queuestats.py, store/durability.py), the operator commands
# (cli/control.py, status/snapshot.py), the status page (web/, status/runs.py), the worker
# (worker/, store/workqueue.py, cli/dlq.py), and by redis-py when it connects: CLIENT SETNAME.
# (redis-py also sends CLIENT SETINFO, and ignores its refusal: left out, also because Redis
# before 7.2 does not know it.)
CLIENT_COMMANDS = (
    "evalsha", "script|load",
    "hgetall", "xlen", "xrange", "xinfo|groups",
    "subscribe", "unsubscribe",
    "multi", "exec", "discard", "get", "pttl", "zrange", "smembers", "sadd", "srem", "scan",
    "time", "wait",
    "xrevrange", "xpending",
    "xreadgroup", "xautoclaim", "xclaim", "xack", "xtrim", "xgroup|create", "xgroup|delconsumer",
    "xinfo|consumers", "zcard", "set", "del", "exists",
    "client|setname",
)  # fmt: skip
# Only a RedisCluster client needs these: the slot map, and the command table (key positions).
CLUSTER_COMMANDS = ("cluster|slots", "command")


def acl_commands(cluster: bool = False, targets: bool = False) -> list[str]:
    """Every command the rule allows, without duplicates, in a stable order."""
    seen: dict[str, None] = {}
    extra = (*(CLUSTER_COMMANDS if cluster else ()), *(TARGET_COMMANDS if targets else ()))
    for name in (*SCRIPT_COMMANDS, *CLIENT_COMMANDS, *extra):
        seen.setdefault(name, None)
    return list(seen)


def acl_rule(namespace: str = "cronlease", cluster: bool = False) -> str:
    """The ACL SETUSER rule (without `on` and the password): keys, channels, commands."""
    tag = "{" + namespace + "}"
    commands = " ".join(f"+{name}" for name in acl_commands(cluster))
    return f"resetkeys ~{tag}:* resetchannels &{tag}:* -@all {commands}"
