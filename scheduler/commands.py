"""Commands that talk to Redis: run (and, later, status, trigger, pause, resume)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from scheduler.config import load_config
from scheduler.daemon import Daemon, install_signal_handlers
from scheduler.keys import Keys
from scheduler.lease import LeaseTiming, TimingError
from scheduler.logs import setup_logging
from scheduler.redisconn import redact
from scheduler.settings import Settings

log = logging.getLogger("scheduler")

EXIT_USAGE = 2


def resolve_redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    from scheduler.embedded import ensure_embedded_redis

    embedded = ensure_embedded_redis(settings.config_path)
    log.warning(
        "no --redis-url: using the embedded Redis at %s (%s). This is a SINGLE-MACHINE mode: "
        "replicas started from this folder share it; for real failover across machines point "
        "every replica at one Redis with --redis-url.",
        embedded.url,
        "started it" if embedded.started else "already running",
    )
    return embedded.url


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging(settings.log_format, settings.log_level, replica=settings.replica_id)
    try:
        timing = LeaseTiming.for_ttl(settings.lease_ttl_s, settings.redis_timeout_s)
    except TimingError as error:
        log.error("%s", error)
        return EXIT_USAGE
    config = load_config(settings.config_path)  # ConfigError -> exit 2 with every problem
    url = resolve_redis_url(settings)
    log.info(
        "cronlease starting: replica %s, %d schedules from %s (hash %s), Redis %s, lease TTL %gs",
        settings.replica_id,
        len(config.schedules),
        settings.config_path,
        config.digest,
        redact(url),
        timing.ttl_s,
    )
    daemon = Daemon(config, url, Keys(settings.namespace), settings.replica_id, timing)
    install_signal_handlers(daemon)
    return daemon.run()


REDIS_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {"run": cmd_run}
