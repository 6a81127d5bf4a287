"""The connector for one Redis server (TCP, TLS or a Unix socket) with `--redis-*` options."""

from __future__ import annotations

from redis import Redis
from redis.connection import ConnectionPool, SSLConnection

from scheduler.store.connection import Connector
from scheduler.store.topology.options import (
    RedisOptions,
    credentials,
    no_retry,
    tls_kwargs,
    with_server_name,
)
from scheduler.store.topology.url import Topology, parse_url


def single_connector(topology: Topology, options: RedisOptions) -> Connector:
    base = parse_url(topology.url)  # host/port or path, db, user, password, connection class
    url_username, url_password = base.pop("username", None), base.pop("password", None)
    base.update(
        credentials(
            options.username or url_username,
            options.password or url_password,
            options.password_file,
            "--redis-password-file",
        )
    )
    if topology.tls:
        tls = tls_kwargs(options)
        for name in ("ssl_cert_reqs", "ssl_check_hostname"):  # a URL's ?ssl_cert_reqs= stays
            base.setdefault(name, tls.pop(name))
        base.update(tls)
        if options.tls_server_name:
            base["connection_class"] = with_server_name(SSLConnection, options.tls_server_name)

    def make(socket_timeout_s: float, client_name: str) -> Redis:
        pool = ConnectionPool(
            **base,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=no_retry(),
            decode_responses=True,
            client_name=client_name,
        )
        return Redis.from_pool(pool)

    return make
