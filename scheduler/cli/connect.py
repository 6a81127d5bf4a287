"""Building the Redis connector from the command line's settings."""

from __future__ import annotations

from scheduler.cli.settings import Settings
from scheduler.store.connection import Connector
from scheduler.store.keys import Keys
from scheduler.store.topology import RedisOptions, build_connector


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
