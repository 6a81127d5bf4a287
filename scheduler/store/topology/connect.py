"""`build_connector()`: a URL plus the `--redis-*` options, checked once, become a Connector."""

from __future__ import annotations

from scheduler.store.connection import Connector, url_connector
from scheduler.store.keys import Keys
from scheduler.store.topology.cluster import cluster_connector
from scheduler.store.topology.options import RedisOptions, check_options
from scheduler.store.topology.sentinel import sentinel_connector
from scheduler.store.topology.single import single_connector
from scheduler.store.topology.url import CLUSTER, SENTINEL, parse_topology


def build_connector(
    url: str, options: RedisOptions, keys: Keys, *, wait_for_cluster: bool = True
) -> Connector:
    """A Connector for `url`; TopologyError (exit 2) for a URL or option that cannot work.

    A Cluster client learns the slot map when it is made: with `wait_for_cluster` (the daemon)
    making one waits until a node answers; without (the operator commands) an unreachable
    cluster is a ClusterUnavailable (a redis ConnectionError) at once.
    """
    topology = parse_topology(url)
    check_options(topology, options)
    if topology.kind == SENTINEL:
        return sentinel_connector(topology, options)
    if topology.kind == CLUSTER:
        return cluster_connector(topology, options, keys, wait_for_cluster)
    if not options.any_set:
        return url_connector(url)  # the plain case: connection.connect, unchanged
    return single_connector(topology, options)
