"""Every Lua script cronlease runs, in one place: each with its KEYS and ARGV contract.

lease.py (the lease and the replicas' bookkeeping), enqueue.py (runs into cronlease's streams),
targets.py (runs into other job systems' queues), remote.py (a relayed in-Redis target's other
instance), workqueue.py (cronlease's own worker), floor.py (bench/ only: the least a script that
writes runs costs). The typed calls around them are in scheduler/store/scripts.py and
workqueue.py. All of cronlease's keys share the namespace hash tag (see keys.py), so each script
may touch any of them, on Redis Cluster too.
"""

from scheduler.store.lua.enqueue import _LUA_RFC3339, BACKFILL, ENQUEUE_STREAM, MANUAL
from scheduler.store.lua.floor import XADD_FROM_LUA
from scheduler.store.lua.lease import (
    ACQUIRE,
    ADVANCE_CURSORS,
    FORGET,
    HEARTBEAT,
    LEADER_INFO,
    LEAVE,
    RELEASE,
    RENEW,
)
from scheduler.store.lua.remote import REMOTE_WRITE
from scheduler.store.lua.targets import ENQUEUE_TARGET, QUEUE_LENGTHS, WRITE_RUNS
from scheduler.store.lua.workqueue import PROMOTE, REPLAY, SETTLE

__all__ = [
    "ACQUIRE",
    "ADVANCE_CURSORS",
    "BACKFILL",
    "ENQUEUE_STREAM",
    "ENQUEUE_TARGET",
    "FORGET",
    "HEARTBEAT",
    "LEADER_INFO",
    "LEAVE",
    "MANUAL",
    "PROMOTE",
    "QUEUE_LENGTHS",
    "RELEASE",
    "REMOTE_WRITE",
    "RENEW",
    "REPLAY",
    "SETTLE",
    "WRITE_RUNS",
    "XADD_FROM_LUA",
    "_LUA_RFC3339",
]
