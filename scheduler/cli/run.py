"""`cronlease run`: start (or join) the embedded Redis, build the daemon, serve its HTTP, run it."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import prometheus_client
import redis
from prometheus_client import CollectorRegistry

from scheduler.cli.connect import connector_for
from scheduler.cli.control import CONTROL_COMMANDS
from scheduler.cli.settings import Settings
from scheduler.cli.util import UsageError
from scheduler.core.config import load_config
from scheduler.daemon.loop import Daemon
from scheduler.daemon.signals import install_signal_handlers
from scheduler.ops.httpserver import ProbeServer
from scheduler.ops.logs import setup_logging
from scheduler.ops.metrics import PER_SCHEDULE_LIMIT, Metrics
from scheduler.store.connection import connect
from scheduler.store.durability import Durability, DurabilityError
from scheduler.store.embedded import ensure_embedded_redis, shutdown_if_last
from scheduler.store.keys import Keys
from scheduler.store.lease import LeaseTiming, TimingError
from scheduler.store.topology import TopologyError, check_keys, parse_topology

log = logging.getLogger("scheduler")

EXIT_USAGE = 2


def start_embedded(settings: Settings) -> str:
    """Start (or join) the embedded Redis beside the config; its URL."""
    try:
        embedded = ensure_embedded_redis(settings.config_path)
    except (RuntimeError, OSError) as error:
        # OSError: e.g. a read-only folder beside the config (a systemd unit without a URL).
        raise UsageError(
            f"cannot start the embedded Redis: {error}; pass --redis-url to use a Redis server"
        ) from None
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
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        timing = LeaseTiming.for_ttl(settings.lease_ttl_s, settings.redis_timeout_s)
    except TimingError as error:
        log.error("%s", error)
        return EXIT_USAGE
    config = load_config(settings.config_path)  # ConfigError -> exit 2 with every problem
    keys = Keys(settings.namespace)
    embedded = not settings.redis_url
    try:
        # Every key in one slot (Redis Cluster), the URL and the --redis-* options coherent:
        # checked before anything starts, so a mistake is exit 2 with one sentence.
        check_keys(keys, [s.queue for s in config.schedules])
        if not embedded:
            connector_for(str(settings.redis_url), settings)
    except TopologyError as error:
        raise UsageError(str(error)) from None
    url = start_embedded(settings) if embedded else str(settings.redis_url)
    try:
        connector = connector_for(url, settings)
    except TopologyError as error:  # options that do not fit the embedded server's socket
        raise UsageError(str(error)) from None
    log.info(
        "cronlease starting: replica %s, %d schedules from %s (hash %s), Redis %s, lease TTL %gs",
        settings.replica_id,
        len(config.schedules),
        settings.config_path,
        config.digest,
        parse_topology(url).describe(),
        timing.ttl_s,
    )
    revive = (lambda: ensure_embedded_redis(settings.config_path)) if embedded else None
    registry = CollectorRegistry(auto_describe=True)
    metrics = Metrics(registry, per_schedule=per_schedule_series(settings, len(config.schedules)))
    try:
        durability = Durability.from_settings(
            settings.redis_wait_replicas,
            settings.redis_wait_timeout_s,
            timing.socket_timeout_s,
            keys.wait_probe,
            settings.replica_id,
            metrics.unacknowledged_writes,
        )
    except DurabilityError as error:
        raise UsageError(str(error)) from None
    if durability is not None:
        log.info(
            "durability: lease and enqueue writes wait for %d replica(s), at most %d ms each",
            durability.replicas,
            durability.timeout_ms,
        )
    daemon = Daemon(
        config,
        connector,
        keys,
        settings.replica_id,
        timing,
        metrics,
        revive,
        durability=durability,
    )
    server = None
    if settings.metrics_port:
        try:
            server = ProbeServer(
                settings.metrics_host, settings.metrics_port, registry, daemon.health, daemon.ready
            )
        except OSError as error:
            raise UsageError(
                f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} "
                f"({error.strerror or error}); pick another --metrics-port, or 0 to turn it off"
            ) from None
        server.start()
        log.info("serving /metrics, /healthz and /readyz on port %d", server.port)
    install_signal_handlers(daemon)
    code = daemon.run()
    if server is not None:
        server.stop()
    if embedded:
        stop_embedded(url, daemon.client_name)
    return code


def per_schedule_series(settings: Settings, count: int) -> bool:
    if settings.schedule_metrics == "auto":
        if count > PER_SCHEDULE_LIMIT:
            log.info(
                "%d schedules: per-schedule metric series are off (--schedule-metrics on "
                "forces them)",
                count,
            )
        return count <= PER_SCHEDULE_LIMIT
    return settings.schedule_metrics == "on"


REDIS_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "run": cmd_run,
    **CONTROL_COMMANDS,
}
