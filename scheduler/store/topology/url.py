"""The Redis URL forms cronlease accepts, parsed into a secret-free `Topology`.

    redis://[[user]:password@]host[:port][/db]          one server (redis-py's own syntax)
    rediss://...                                         the same over TLS
    unix://[[user]:password@]/path/to/redis.sock[?db=N]  a Unix socket
    redis+sentinel://[[user]:password@]host1[:26379],host2[:26379]/<master-name>[/db]
    rediss+sentinel://...                                TLS to the sentinels and the primary
    redis+cluster://[[user]:password@]host1[:6379][,host2[:6379]...]
    rediss+cluster://...                                 TLS to every node

The user and password in a Sentinel URL are the data nodes' (the primary's); the sentinels' own
password comes from --redis-sentinel-password(-file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from redis.connection import parse_url as _untyped_parse_url

from scheduler.store.connection import redact

SINGLE = "single"
SENTINEL = "sentinel"
CLUSTER = "cluster"

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
SINGLE_SCHEMES = {"redis": False, "rediss": True, "unix": False}
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379


class TopologyError(ValueError):
    """A Redis URL or option that cannot work: one sentence for the operator, exit 2."""


# redis-py leaves this untyped; we call it through a typed name.
parse_url: Callable[[str], dict[str, Any]] = _untyped_parse_url


@dataclass(frozen=True)
class Topology:
    """A parsed Redis URL: what to connect to, without any secret."""

    kind: str  # SINGLE, SENTINEL or CLUSTER
    url: str  # as given (holds the password, if any: show redact(url) only)
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()  # sentinels (SENTINEL) or seed nodes (CLUSTER)
    master_name: str = ""  # SENTINEL
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """For logs and status: what we connect to, password redacted."""
        addresses = ",".join(join_host(host, port) for host, port in self.hosts)
        tls = " over TLS" if self.tls else ""
        if self.kind == SENTINEL:
            return f"Sentinel primary {self.master_name!r} via {addresses} (db {self.db}){tls}"
        if self.kind == CLUSTER:
            return f"Redis Cluster seeded by {addresses}{tls}"
        return redact(self.url)


def parse_topology(url: str) -> Topology:
    """Parse any supported URL form; TopologyError with a sentence on anything else."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise TopologyError(f"{redact(url)} is not a URL (expected e.g. redis://host:6379/0)")
    if scheme in SINGLE_SCHEMES:
        try:
            parse_url(url)
        except ValueError as error:
            raise TopologyError(f"{redact(url)}: {error}") from None
        return Topology(SINGLE, url, SINGLE_SCHEMES[scheme])
    if scheme not in SENTINEL_SCHEMES and scheme not in CLUSTER_SCHEMES:
        known = ", ".join(f"{s}://" for s in [*SINGLE_SCHEMES, *SENTINEL_SCHEMES, *CLUSTER_SCHEMES])
        raise TopologyError(f"{redact(url)}: unknown scheme {scheme}:// (use one of {known})")
    netloc, _, path = rest.partition("/")
    path, _, query = path.partition("?")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    if query:
        names = sorted({name for name, _ in parse_qsl(query, keep_blank_values=True)})
        raise TopologyError(
            f"{redact(url)}: query parameters ({', '.join(names)}) are not supported in "
            f"{scheme}:// URLs; use the --redis-* flags (or CRONLEASE_REDIS_* variables)"
        )
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon and secret else None
    if scheme in SENTINEL_SCHEMES:
        hosts = _hosts(hostlist, DEFAULT_SENTINEL_PORT, url)
        parts = [unquote(p) for p in path.split("/")] if path else []
        if not parts or not parts[0]:
            raise TopologyError(
                f"{redact(url)}: no master name; the form is "
                f"{scheme}://host1:26379,host2:26379/<master-name>[/db]"
            )
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
            raise TopologyError(f"{redact(url)}: expected /<master-name>[/db] after the hosts")
        db = int(parts[1]) if len(parts) == 2 else 0
        return Topology(
            SENTINEL,
            url,
            SENTINEL_SCHEMES[scheme],
            hosts,
            parts[0],
            db,
            username,
            password,
        )
    hosts = _hosts(hostlist, DEFAULT_REDIS_PORT, url)
    if path not in ("", "0"):
        raise TopologyError(
            f"{redact(url)}: Redis Cluster has only database 0; drop the /{path} from the URL"
        )
    return Topology(CLUSTER, url, CLUSTER_SCHEMES[scheme], hosts, "", 0, username, password)


def _hosts(hostlist: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [IPv6]:port
            host, _, tail = item[1:].partition("]")
            port_text = tail[1:] if tail.startswith(":") else ""
        else:
            host, _, port_text = item.partition(":")
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise TopologyError(f"{redact(url)}: bad port in {item!r}") from None
        if not host or not 0 < port < 65536:
            raise TopologyError(f"{redact(url)}: bad address {item!r}")
        hosts.append((host, port))
    if not hosts:
        raise TopologyError(f"{redact(url)}: no host")
    return tuple(hosts)


def join_host(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
