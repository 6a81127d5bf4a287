"""How cronlease reaches Redis: one server, a Sentinel-managed primary, or a Cluster.

Everything about the connection is decided here, once, at start-up: `build_connector()` turns a
URL plus the `--redis-*` options into a `Connector` (scheduler/store/connection.py) that the
daemon and the operator commands call for every client they need. url.py lists the URL forms.
"""

from scheduler.store.topology.cluster import ClusterClientError, ClusterUnavailable
from scheduler.store.topology.connect import build_connector
from scheduler.store.topology.options import FileCredentials, RedisOptions, read_secret
from scheduler.store.topology.slots import check_keys
from scheduler.store.topology.url import (
    CLUSTER,
    CLUSTER_SCHEMES,
    DEFAULT_REDIS_PORT,
    DEFAULT_SENTINEL_PORT,
    SENTINEL,
    SENTINEL_SCHEMES,
    SINGLE,
    SINGLE_SCHEMES,
    Topology,
    TopologyError,
    parse_topology,
    parse_url,
)

__all__ = [
    "CLUSTER",
    "CLUSTER_SCHEMES",
    "DEFAULT_REDIS_PORT",
    "DEFAULT_SENTINEL_PORT",
    "SENTINEL",
    "SENTINEL_SCHEMES",
    "SINGLE",
    "SINGLE_SCHEMES",
    "ClusterClientError",
    "ClusterUnavailable",
    "FileCredentials",
    "RedisOptions",
    "Topology",
    "TopologyError",
    "build_connector",
    "check_keys",
    "parse_topology",
    "parse_url",
    "read_secret",
]
