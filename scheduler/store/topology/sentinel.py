"""The connector for a Sentinel-managed primary.

redis-py's SentinelConnectionPool asks the sentinels for the primary's address on every new
connection, so a reconnect after a failover reaches the new primary. A READONLY reply (our
connection still points at a demoted primary) is turned by redis-py into a ConnectionError and
the connection is dropped. Both are "not leading until the lease is re-acquired" for the daemon:
it backs off, and stops leading when its lease deadline passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.sentinel import Sentinel, SentinelManagedSSLConnection

from scheduler.store.connection import Connector
from scheduler.store.topology.options import (
    RedisOptions,
    credentials,
    no_retry,
    tls_kwargs,
    with_server_name,
)
from scheduler.store.topology.url import Topology

# redis-py leaves this untyped; we call it through a typed name.
_new_sentinel: Callable[..., Any] = Sentinel


def sentinel_connector(topology: Topology, options: RedisOptions) -> Connector:
    data_auth = credentials(
        options.username or topology.username,
        options.password or topology.password,
        options.password_file,
        "--redis-password-file",
    )
    sentinel_auth = credentials(
        None,
        options.sentinel_password,
        options.sentinel_password_file,
        "--redis-sentinel-password-file",
    )
    tls: dict[str, Any] = {}
    sentinel_tls: dict[str, Any] = {}
    if topology.tls:
        tls = {"ssl": True, **tls_kwargs(options)}
        # The sentinels are reached at the addresses in the URL: checked against those names.
        sentinel_tls = dict(tls)
        if options.tls_server_name:
            tls["connection_class"] = with_server_name(
                SentinelManagedSSLConnection, options.tls_server_name
            )

    def make(socket_timeout_s: float, client_name: str) -> Redis:
        sentinel = _new_sentinel(
            list(topology.hosts),
            sentinel_kwargs={
                "socket_timeout": socket_timeout_s,
                "socket_connect_timeout": socket_timeout_s,
                "retry": no_retry(),
                "decode_responses": True,
                "client_name": client_name,
                **sentinel_auth,
                **sentinel_tls,
            },
        )
        client: Redis = sentinel.master_for(
            topology.master_name,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=no_retry(),
            decode_responses=True,
            client_name=client_name,
            db=topology.db,
            **data_auth,
            **tls,
        )
        return client

    return make
