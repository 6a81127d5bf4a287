"""The connector for a Redis Cluster, whose client errors are all RedisErrors.

MOVED and ASK are redirections, not retries: redis-py's RedisCluster follows them (and refreshes
its slot map) whatever the retry setting; `retry` only bounds the retries on connection errors,
timeouts and CLUSTERDOWN, and we set it to none. A cluster that cannot be reached at all surfaces
from redis-py as RedisClusterException (not a RedisError); our subclass turns it into a
ConnectionError so the daemon's error handling sees what it expects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import redis
from redis import Redis
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import SSLConnection
from redis.exceptions import RedisClusterException

from scheduler.store.connection import Connector
from scheduler.store.keys import Keys
from scheduler.store.topology.options import (
    RedisOptions,
    credentials,
    no_retry,
    tls_kwargs,
    with_server_name,
)
from scheduler.store.topology.url import Topology, join_host

log = logging.getLogger(__name__)

# redis-py leaves this untyped; we call it through a typed name.
_new_node: Callable[[str, int], Any] = ClusterNode


class ClusterUnavailable(redis.exceptions.ConnectionError):
    """No node of the Redis Cluster could be reached (or its slots are not covered)."""


class ClusterClientError(redis.exceptions.RedisError):
    """Any other RedisClusterException, as a RedisError so the daemon backs off instead of dying."""


def _as_redis_error(error: RedisClusterException) -> redis.exceptions.RedisError:
    text = str(error)
    unreachable = isinstance(error, redis.exceptions.SlotNotCoveredError) or any(
        marker in text for marker in ("cannot be connected", "not covered")
    )
    return (ClusterUnavailable if unreachable else ClusterClientError)(text)


class _Cluster(RedisCluster):
    """RedisCluster whose failures are all RedisErrors, like those of a single server's client."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisClusterException as error:
            raise _as_redis_error(error) from error

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        execute = pipe.execute

        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                return execute(*args, **kwargs)
            except RedisClusterException as error:
                raise _as_redis_error(error) from error

        pipe.execute = checked
        return pipe


def cluster_connector(
    topology: Topology, options: RedisOptions, keys: Keys, wait: bool
) -> Connector:
    auth = credentials(
        options.username or topology.username,
        options.password or topology.password,
        options.password_file,
        "--redis-password-file",
    )
    tls: dict[str, Any] = {}
    if topology.tls:
        tls = tls_kwargs(options)
        base = SSLConnection
        tls["connection_class"] = (
            with_server_name(base, options.tls_server_name) if options.tls_server_name else base
        )
    (first_host, first_port), *others = topology.hosts
    slot_key = keys.leader

    def make(socket_timeout_s: float, client_name: str) -> Redis:
        # Through `url=` (plain redis:// to the first seed) because only that path of redis-py
        # builds the node pools from our kwargs, connection class (TLS) included.
        client = _connect_cluster(
            wait,
            lambda: _Cluster(
                url=f"redis://{join_host(first_host, first_port)}",
                startup_nodes=[_new_node(host, port) for host, port in others],
                retry=no_retry(),
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
                decode_responses=True,
                client_name=client_name,
                **auth,
                **tls,
            ),
            topology,
        )
        # Keyless commands (INFO, CONFIG GET, TIME) go to the default node: make it the primary
        # that holds cronlease's slot, so the start-up checks look at the right server.
        untyped: Any = client
        node = untyped.get_node_from_key(slot_key)
        if node is not None:
            untyped.set_default_node(node)
        # RedisCluster is not a Redis subclass, but offers every command cronlease sends
        # (scripts route by their first key; pub/sub, pipelines and SCAN have cluster versions).
        return cast(Redis, client)

    return make


def _connect_cluster(wait: bool, create: Callable[[], _Cluster], topology: Topology) -> _Cluster:
    """RedisCluster discovers the slot map in its constructor: wait (with backoff, saying so
    once) until a seed node answers, as the daemon waits for any Redis that is down; or, not
    waiting, raise ClusterUnavailable."""
    delay_s = 0.05
    warned = False
    while True:
        try:
            client = create()
        except (RedisClusterException, redis.exceptions.RedisError) as error:
            if not wait:
                text = " ".join(str(error).split())
                raise ClusterUnavailable(f"{topology.describe()}: {text}") from error
            if not warned:
                log.warning(
                    "cannot reach the %s (%s); retrying with backoff",
                    topology.describe(),
                    " ".join(str(error).split())[:300],
                )
                warned = True
            time.sleep(delay_s)
            delay_s = min(2.0, delay_s * 2)
            continue
        if warned:
            log.warning("reached the %s", topology.describe())
        return client
