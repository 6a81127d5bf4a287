"""Start-up warnings about Redis settings that undermine exactly-once. Warnings, not failures:
the daemon runs on whatever Redis it is given, and says once what could go wrong."""

from __future__ import annotations

import logging

import redis
from redis import Redis

log = logging.getLogger(__name__)

MIN_REDIS_VERSION = (6, 2)


def warn_about_server(client: Redis) -> None:
    """Old Redis, an eviction policy that can delete the cursor, no persistence. A least-
    privilege ACL user may not run INFO or CONFIG GET: say so once and carry on."""
    try:
        info = client.info("server")
        version = tuple(int(p) for p in str(info.get("redis_version", "0.0")).split(".")[:2])
        if version < MIN_REDIS_VERSION:
            log.warning("Redis %s is older than 6.2; cronlease is tested on 6.2+", version)
    except redis.exceptions.NoPermissionError:
        log.warning("cannot run INFO (NOPERM); skipping the Redis version check")
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        if policy and policy != "noeviction":
            log.warning(
                "Redis maxmemory-policy is %s: eviction can delete the cursor and the lease; "
                "set maxmemory-policy noeviction",
                policy,
            )
        persistence = client.config_get("appendonly")
        save = client.config_get("save").get("save", "")
        if persistence.get("appendonly") != "yes" and not save:
            log.warning(
                "Redis has no persistence (appendonly no, no save points): a restart loses "
                "cursors and queued runs; set appendonly yes"
            )
    except redis.exceptions.NoPermissionError:
        log.warning("cannot run CONFIG GET (NOPERM); skipping eviction/persistence checks")
    except redis.exceptions.ResponseError as error:
        log.warning("cannot check Redis settings: %s", error)
