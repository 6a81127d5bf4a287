"""How cronlease reaches Redis: one server, a Sentinel-managed primary, or a Cluster.

Everything about the connection is decided here, once, at start-up: `build_connector()` turns a URL
plus the `--redis-*` options into a `Connector` (redisconn.py) that the daemon and the operator
commands call for every client they need. URL forms:

    redis://[[user]:password@]host[:port][/db]          one server (redis-py's own syntax)
    rediss://...                                         the same over TLS
    unix://[[user]:password@]/path/to/redis.sock[?db=N]  a Unix socket
    redis+sentinel://[[user]:password@]host1[:26379],host2[:26379]/<master-name>[/db]
    rediss+sentinel://...                                TLS to the sentinels and the primary
    redis+cluster://[[user]:password@]host1[:6379][,host2[:6379]...]
    rediss+cluster://...                                 TLS to every node

The user and password in a Sentinel URL are the data nodes' (the primary's); the sentinels' own
password comes from --redis-sentinel-password(-file). --redis-password-file is read again for
every new connection, so a rotated Kubernetes Secret takes effect without a restart.

No client retries on its own (retry=Retry(NoBackoff(), 0)): every retry decision is the daemon's,
against the lease. What that means per topology:

- Sentinel: redis-py's SentinelConnectionPool asks the sentinels for the primary's address on
  every new connection, so a reconnect after a failover reaches the new primary. A READONLY reply
  (our connection still points at a demoted primary) is turned by redis-py into a
  ConnectionError and the connection is dropped. Both are "not leading until the lease is
  re-acquired" for the daemon: it backs off, and stops leading when its lease deadline passes.
- Cluster: MOVED and ASK are redirections, not retries: redis-py's RedisCluster follows them
  (and refreshes its slot map) whatever the retry setting; `retry` only bounds the retries on
  connection errors, timeouts and CLUSTERDOWN, and we set it to none. A cluster that cannot be
  reached at all surfaces from redis-py as RedisClusterException (not a RedisError); our
  subclass turns it into a ConnectionError so the daemon's error handling sees what it expects.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, unquote

import redis
from redis import Redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import ConnectionPool, SSLConnection
from redis.connection import parse_url as _untyped_parse_url
from redis.crc import key_slot
from redis.credentials import CredentialProvider
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedSSLConnection

from scheduler.cli.settings import Settings
from scheduler.store.connection import Connector, redact, url_connector
from scheduler.store.keys import Keys

log = logging.getLogger(__name__)

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


# redis-py leaves these untyped; we call them through typed names.
parse_url: Callable[[str], dict[str, Any]] = _untyped_parse_url
_new_sentinel: Callable[..., Any] = Sentinel
_new_node: Callable[[str, int], Any] = ClusterNode


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


# -- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisOptions:
    """The `--redis-*` connection options besides the URL (see settings.py)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    sentinel_password_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_server_name: str | None = None

    @property
    def any_tls(self) -> bool:
        return any((self.tls_ca, self.tls_cert, self.tls_key, self.tls_server_name))

    @property
    def any_set(self) -> bool:
        return self.any_tls or any(
            (
                self.username,
                self.password,
                self.password_file,
                self.sentinel_password,
                self.sentinel_password_file,
            )
        )


def read_secret(path: str, flag: str) -> str:
    """The content of a secret file (a mounted Kubernetes Secret), without the trailing newline."""
    try:
        with open(path, encoding="utf-8") as secret:
            text = secret.read()
    except OSError as error:
        raise TopologyError(f"{flag} {path}: cannot read it ({error.strerror or error})") from None
    text = text.rstrip("\r\n")
    if not text:
        raise TopologyError(f"{flag} {path}: the file is empty")
    return text


class FileCredentials(CredentialProvider):
    """Username plus a password read from a file on every new connection (rotation-friendly)."""

    def __init__(self, username: str | None, path: str, flag: str) -> None:
        self.username = username
        self.path = path
        self.flag = flag

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        try:
            password = read_secret(self.path, self.flag)
        except TopologyError as error:
            # A ConnectionError: the daemon retries with backoff, as for any unreachable Redis.
            raise redis.exceptions.AuthenticationError(str(error)) from None
        return (self.username, password) if self.username else (password,)


# -- parsing ----------------------------------------------------------------------------------


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
        addresses = ",".join(_join_host(host, port) for host, port in self.hosts)
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


def _join_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- keys and slots ---------------------------------------------------------------------------


def check_keys(keys: Keys, queues: Sequence[str]) -> None:
    """Every key cronlease uses must hash to one slot, or its scripts fail on Redis Cluster.

    They do when the namespace is a proper hash tag, so this rejects what breaks it: braces in
    the namespace, an empty one. Checked at start-up on every topology, so a namespace that works
    on one server keeps working when that server becomes a cluster.
    """
    namespace = keys.namespace
    if not namespace or "{" in namespace or "}" in namespace:
        raise TopologyError(
            f"--namespace {namespace!r}: must be non-empty and contain no '{{' or '}}': every "
            "key is `{<namespace>}:...`, and that hash tag keeps all of them in one Redis "
            "Cluster slot"
        )
    names = {
        "leader": keys.leader,
        "epoch": keys.epoch,
        "cursor": keys.cursor,
        "paused": keys.paused,
        "generation": keys.generation,
        "replicas": keys.replicas,
        "replica-info": keys.replica_info,
        "leader-info": keys.leader_info,
        "wait-probe": keys.wait_probe,
        **{f"queue {queue!r}": keys.queue(queue) for queue in sorted(set(queues))},
    }
    home = key_slot(keys.leader.encode())
    for what, key in names.items():
        slot = key_slot(key.encode())
        if slot != home:
            raise TopologyError(
                f"key {key!r} ({what}) hashes to slot {slot}, the lease to slot {home}: "
                "one script could not touch both on Redis Cluster"
            )


# -- TLS --------------------------------------------------------------------------------------


class _ServerNameMixin:
    """Sends SNI for, and checks the certificate against, `server_name` instead of the address
    we connect to (a Sentinel hands out IP addresses; certificates usually name hosts)."""

    server_name = ""
    host: str

    def _wrap_socket_with_ssl(self, sock: Any) -> Any:
        address = self.host
        self.host = self.server_name
        try:
            return super()._wrap_socket_with_ssl(sock)  # type: ignore[misc]
        finally:
            self.host = address


def _named(base: type[SSLConnection], server_name: str) -> type[SSLConnection]:
    if not hasattr(base, "_wrap_socket_with_ssl"):
        raise TopologyError(
            "--redis-tls-server-name needs a newer redis-py (SSLConnection._wrap_socket_with_ssl)"
        )
    return cast(
        "type[SSLConnection]",
        type(f"{base.__name__}Named", (_ServerNameMixin, base), {"server_name": server_name}),
    )


def _tls_kwargs(options: RedisOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    if options.tls_ca:
        kwargs["ssl_ca_certs"] = options.tls_ca
    if options.tls_cert:
        kwargs["ssl_certfile"] = options.tls_cert
    if options.tls_key:
        kwargs["ssl_keyfile"] = options.tls_key
    return kwargs


def _check_options(topology: Topology, options: RedisOptions) -> None:
    url = redact(topology.url)
    if options.any_tls and not topology.tls:
        raise TopologyError(
            f"TLS options (--redis-tls-*) given but {url} is not a TLS URL; use rediss:// "
            "(or rediss+sentinel://, rediss+cluster://)"
        )
    if bool(options.tls_cert) != bool(options.tls_key):
        raise TopologyError(
            "--redis-tls-cert and --redis-tls-key go together (a client certificate)"
        )
    for flag, path in (
        ("--redis-tls-ca", options.tls_ca),
        ("--redis-tls-cert", options.tls_cert),
        ("--redis-tls-key", options.tls_key),
    ):
        if path and not os.access(path, os.R_OK):
            raise TopologyError(f"{flag} {path}: no such readable file")
    if options.password_file:
        read_secret(options.password_file, "--redis-password-file")
    if options.sentinel_password_file:
        read_secret(options.sentinel_password_file, "--redis-sentinel-password-file")
    if topology.kind != SENTINEL and (options.sentinel_password or options.sentinel_password_file):
        raise TopologyError(f"a sentinel password is given but {url} is not a Sentinel URL")


def _credentials(
    username: str | None, password: str | None, password_file: str | None, flag: str
) -> dict[str, Any]:
    """Connection kwargs for auth: a password file wins over a password flag over the URL's."""
    if password_file:
        return {"credential_provider": FileCredentials(username, password_file, flag)}
    kwargs: dict[str, Any] = {}
    if username:
        kwargs["username"] = username
    if password:
        kwargs["password"] = password
    return kwargs


# -- connectors -------------------------------------------------------------------------------


def build_connector(
    url: str, options: RedisOptions, keys: Keys, *, wait_for_cluster: bool = True
) -> Connector:
    """A Connector for `url`; TopologyError (exit 2) for a URL or option that cannot work.

    A Cluster client learns the slot map when it is made: with `wait_for_cluster` (the daemon)
    making one waits until a node answers; without (the operator commands) an unreachable
    cluster is a ClusterUnavailable (a redis ConnectionError) at once.
    """
    topology = parse_topology(url)
    _check_options(topology, options)
    if topology.kind == SENTINEL:
        return _sentinel_connector(topology, options)
    if topology.kind == CLUSTER:
        return _cluster_connector(topology, options, keys, wait_for_cluster)
    if not options.any_set:
        return url_connector(url)  # the plain case: redisconn.connect, unchanged
    return _single_connector(topology, options)


def _single_connector(topology: Topology, options: RedisOptions) -> Connector:
    base = parse_url(topology.url)  # host/port or path, db, user, password, connection class
    url_username, url_password = base.pop("username", None), base.pop("password", None)
    base.update(
        _credentials(
            options.username or url_username,
            options.password or url_password,
            options.password_file,
            "--redis-password-file",
        )
    )
    if topology.tls:
        tls = _tls_kwargs(options)
        for name in ("ssl_cert_reqs", "ssl_check_hostname"):  # a URL's ?ssl_cert_reqs= stays
            base.setdefault(name, tls.pop(name))
        base.update(tls)
        if options.tls_server_name:
            base["connection_class"] = _named(SSLConnection, options.tls_server_name)

    def make(socket_timeout_s: float, client_name: str) -> Redis:
        pool = ConnectionPool(
            **base,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=_no_retry(),
            decode_responses=True,
            client_name=client_name,
        )
        return Redis.from_pool(pool)

    return make


def _sentinel_connector(topology: Topology, options: RedisOptions) -> Connector:
    data_auth = _credentials(
        options.username or topology.username,
        options.password or topology.password,
        options.password_file,
        "--redis-password-file",
    )
    sentinel_auth = _credentials(
        None,
        options.sentinel_password,
        options.sentinel_password_file,
        "--redis-sentinel-password-file",
    )
    tls: dict[str, Any] = {}
    sentinel_tls: dict[str, Any] = {}
    if topology.tls:
        tls = {"ssl": True, **_tls_kwargs(options)}
        # The sentinels are reached at the addresses in the URL: checked against those names.
        sentinel_tls = dict(tls)
        if options.tls_server_name:
            tls["connection_class"] = _named(SentinelManagedSSLConnection, options.tls_server_name)

    def make(socket_timeout_s: float, client_name: str) -> Redis:
        sentinel = _new_sentinel(
            list(topology.hosts),
            sentinel_kwargs={
                "socket_timeout": socket_timeout_s,
                "socket_connect_timeout": socket_timeout_s,
                "retry": _no_retry(),
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
            retry=_no_retry(),
            decode_responses=True,
            client_name=client_name,
            db=topology.db,
            **data_auth,
            **tls,
        )
        return client

    return make


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


def _cluster_connector(
    topology: Topology, options: RedisOptions, keys: Keys, wait: bool
) -> Connector:
    auth = _credentials(
        options.username or topology.username,
        options.password or topology.password,
        options.password_file,
        "--redis-password-file",
    )
    tls: dict[str, Any] = {}
    if topology.tls:
        tls = _tls_kwargs(options)
        base = SSLConnection
        tls["connection_class"] = (
            _named(base, options.tls_server_name) if options.tls_server_name else base
        )
    (first_host, first_port), *others = topology.hosts
    slot_key = keys.leader

    def make(socket_timeout_s: float, client_name: str) -> Redis:
        # Through `url=` (plain redis:// to the first seed) because only that path of redis-py
        # builds the node pools from our kwargs, connection class (TLS) included.
        client = _connect_cluster(
            wait,
            lambda: _Cluster(
                url=f"redis://{_join_host(first_host, first_port)}",
                startup_nodes=[_new_node(host, port) for host, port in others],
                retry=_no_retry(),
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


# -- from settings ----------------------------------------------------------------------------


def options_from(settings: Settings) -> RedisOptions:
    return RedisOptions(
        username=settings.redis_username,
        password=settings.redis_password,
        password_file=settings.redis_password_file,
        sentinel_password=settings.redis_sentinel_password,
        sentinel_password_file=settings.redis_sentinel_password_file,
        tls_ca=settings.redis_tls_ca,
        tls_cert=settings.redis_tls_cert,
        tls_key=settings.redis_tls_key,
        tls_server_name=settings.redis_tls_server_name,
    )


def connector_for(url: str, settings: Settings, *, wait_for_cluster: bool = True) -> Connector:
    """The Connector for `url` with the settings' `--redis-*` options; TopologyError if bad."""
    return build_connector(
        url, options_from(settings), Keys(settings.namespace), wait_for_cluster=wait_for_cluster
    )
