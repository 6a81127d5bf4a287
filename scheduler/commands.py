"""Commands that talk to Redis: run (and, later, status, trigger, pause, resume)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import redis

from scheduler.cli_errors import UsageError
from scheduler.config import load_config
from scheduler.daemon import Daemon, install_signal_handlers
from scheduler.embedded import ensure_embedded_redis, shutdown_if_last
from scheduler.keys import Keys
from scheduler.lease import LeaseTiming, TimingError
from scheduler.logs import setup_logging
from scheduler.redisconn import connect, redact
from scheduler.settings import Settings

log = logging.getLogger("scheduler")

EXIT_USAGE = 2


def start_embedded(settings: Settings) -> str:
    """Start (or join) the embedded Redis beside the config; its URL."""
    try:
        embedded = ensure_embedded_redis(settings.config_path)
    except RuntimeError as error:
        raise UsageError(f"cannot start the embedded Redis: {error}") from None
    log.warning(
        "no --redis-url: using the embedded Redis at %s (%s). This is a SINGLE-MACHINE mode: "
        "replicas started from this folder share it; for real failover across machines point "
        "every replica at one Redis with --redis-url.",
        embedded.url,
        "started it" if embedded.started else "already running",
    )
    return embedded.url


def stop_embedded(url: str, client_name: str) -> None:
    """On a clean stop, shut the embedded server down if no other replica still uses it."""
    client = connect(url, 2.0, client_name)
    try:
        shutdown_if_last(client, client_name)
    except (redis.RedisError, RuntimeError) as error:
        log.warning("left the embedded Redis running: %s", error)
    finally:
        client.close()


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging(settings.log_format, settings.log_level, replica=settings.replica_id)
    try:
        timing = LeaseTiming.for_ttl(settings.lease_ttl_s, settings.redis_timeout_s)
    except TimingError as error:
        log.error("%s", error)
        return EXIT_USAGE
    config = load_config(settings.config_path)  # ConfigError -> exit 2 with every problem
    embedded = not settings.redis_url
    url = start_embedded(settings) if embedded else str(settings.redis_url)
    log.info(
        "cronlease starting: replica %s, %d schedules from %s (hash %s), Redis %s, lease TTL %gs",
        settings.replica_id,
        len(config.schedules),
        settings.config_path,
        config.digest,
        redact(url),
        timing.ttl_s,
    )
    revive = (lambda: ensure_embedded_redis(settings.config_path)) if embedded else None
    daemon = Daemon(config, url, Keys(settings.namespace), settings.replica_id, timing, revive)
    install_signal_handlers(daemon)
    code = daemon.run()
    if embedded:
        stop_embedded(url, daemon.client_name)
    return code


REDIS_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {"run": cmd_run}
