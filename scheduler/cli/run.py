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
from scheduler.core.schedule import Config
from scheduler.daemon.loop import Daemon
from scheduler.daemon.signals import EarlyStop
from scheduler.ops import failpoints
from scheduler.ops.httpserver import ProbeServer
from scheduler.ops.logs import setup_logging
from scheduler.ops.metrics import PER_SCHEDULE_LIMIT, Metrics
from scheduler.store.connection import REDIS_ERRORS, Connector, connect
from scheduler.store.durability import Durability, DurabilityError
from scheduler.store.embedded import (
    EmbeddedRedis,
    embedded_url,
    ensure_embedded_redis,
)
from scheduler.store.embeddedstop import shutdown_if_last
from scheduler.store.keys import Keys
from scheduler.store.lease import LeaseTiming, TimingError
from scheduler.store.topology import TopologyError, check_keys, parse_topology
from scheduler.web.app import StatusApp
from scheduler.web.auth import TokenFileError, TokenSource, read_token_file, token_file_source
from scheduler.web.client import LazyClient

log = logging.getLogger("scheduler")

EXIT_USAGE = 2
MAX_PORT = 65535


def start_embedded(settings: Settings) -> EmbeddedRedis:
    """Start (or join) the embedded Redis beside the config."""
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
    return embedded


def stop_embedded(url: str, client_name: str) -> None:
    """Shut the embedded server down if no other replica or client still uses it."""
    client = connect(url, 2.0, client_name)
    try:
        shutdown_if_last(client, client_name)
    except (redis.RedisError, RuntimeError) as error:
        log.warning("left the embedded Redis running: %s", error)
    finally:
        client.close()


def check_port(port: int) -> None:
    """A port the OS can bind, checked before anything starts (the bind raises OverflowError)."""
    if not 0 <= port <= MAX_PORT:
        raise UsageError(
            f"--metrics-port {port} is not a port: use 1..{MAX_PORT}, or 0 to turn the HTTP "
            "server off"
        )


class LateProbes:
    """The daemon's probes, for a ProbeServer bound before the daemon exists: binding first makes
    a taken port exit 2 before the embedded Redis starts. Nothing asks them before `daemon` is
    set, since the server starts serving only then; the defaults are for safety."""

    def __init__(self, config: Config) -> None:
        self.daemon: Daemon | None = None
        self._config = config

    def config(self) -> Config:
        """The daemon's config (it follows reloads), for the status page."""
        return self._config if self.daemon is None else self.daemon.config

    def health(self) -> tuple[bool, str]:
        return (False, "starting") if self.daemon is None else self.daemon.health()

    def ready(self) -> tuple[bool, str]:
        return (False, "starting") if self.daemon is None else self.daemon.ready()


def admin_token(settings: Settings) -> TokenSource | None:
    """The page's token source; a file that cannot serve now is exit 2, not a page that
    refuses every action later."""
    if settings.admin_token_file is None:
        return None
    try:
        read_token_file(settings.admin_token_file)
    except TokenFileError as error:
        raise UsageError(f"--admin-token-file: {error}") from None
    return token_file_source(settings.admin_token_file)


def bind_probes(
    settings: Settings,
    registry: CollectorRegistry,
    probes: LateProbes,
    app: StatusApp | None = None,
) -> ProbeServer | None:
    if not settings.metrics_port:
        return None
    try:
        return ProbeServer(
            settings.metrics_bind,
            settings.metrics_port,
            registry,
            probes.health,
            probes.ready,
            app=app,
        )
    except OSError as error:
        raise UsageError(
            f"cannot serve metrics on {settings.metrics_bind}:{settings.metrics_port} "
            f"({error.strerror or error}); pick another --metrics-port, or 0 to turn it off"
        ) from None


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging(settings.log_format, settings.log_level, replica=settings.replica_id)
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    early_stop = EarlyStop()
    early_stop.install()
    # Every check that can fail comes before anything starts, so a mistake is exit 2 with one
    # sentence and nothing left behind; what can only fail later is undone by start_up.
    check_port(settings.metrics_port)
    try:
        timing = LeaseTiming.for_ttl(settings.lease_ttl_s, settings.redis_timeout_s)
    except TimingError as error:
        log.error("%s", error)
        return EXIT_USAGE
    config = load_config(settings.config_path)  # ConfigError -> exit 2 with every problem
    keys = Keys(settings.namespace)
    embedded = not settings.redis_url
    # The embedded server's URL is known before it runs, so its options are checked now too.
    url = embedded_url(settings.config_path) if embedded else str(settings.redis_url)
    try:
        # Every key in one slot (Redis Cluster), the URL and the --redis-* options coherent.
        check_keys(keys, [s.queue for s in config.schedules])
        connector = connector_for(url, settings)
    except TopologyError as error:
        raise UsageError(str(error)) from None
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
    probes = LateProbes(config)
    web_client = LazyClient(connector, settings.replica_id)
    tokens = admin_token(settings)
    app = StatusApp(
        web_client,
        keys,
        probes.config,
        config_path=settings.config_path,
        lease_ttl_s=settings.lease_ttl_s,
        redis_url=url,
        replica_id=settings.replica_id,
        admin_token=tokens,
    )
    server = bind_probes(settings, registry, probes, app)
    daemon = start_up(settings, config, connector, keys, timing, metrics, durability, server)
    probes.daemon = daemon
    if server is not None:
        server.start()
        log.info(
            "serving /metrics, /healthz, /readyz and the status page at / (%s) on %s:%d",
            "pause, resume and trigger with the admin token" if tokens else "read-only",
            settings.metrics_bind,
            server.port,
        )
    early_stop.apply(daemon)
    code = daemon.run()
    if server is not None:
        server.stop()
    web_client.close()  # before the embedded server asks who still uses it
    if embedded:
        stop_embedded(url, daemon.client_name)
    return code


def start_up(
    settings: Settings,
    config: Config,
    connector: Connector,
    keys: Keys,
    timing: LeaseTiming,
    metrics: Metrics,
    durability: Durability | None,
    server: ProbeServer | None,
) -> Daemon:
    """Start (or join) the embedded Redis and build the daemon; if that fails, stop what this
    process started (the embedded server only if no one else uses it) and exit 2."""
    embedded: EmbeddedRedis | None = None
    try:
        if not settings.redis_url:
            embedded = start_embedded(settings)
        log.info(
            "cronlease starting: replica %s, %d schedules from %s (hash %s), Redis %s, "
            "lease TTL %gs",
            settings.replica_id,
            len(config.schedules),
            settings.config_path,
            config.digest,
            parse_topology(embedded.url if embedded else str(settings.redis_url)).describe(),
            timing.ttl_s,
        )
        if durability is not None:
            log.info(
                "durability: lease and enqueue writes wait for %d replica(s), at most %d ms each",
                durability.replicas,
                durability.timeout_ms,
            )
        failpoints.hit("start-up")
        revive = (lambda: ensure_embedded_redis(settings.config_path)) if embedded else None
        return Daemon(
            config,
            connector,
            keys,
            settings.replica_id,
            timing,
            metrics,
            revive,
            durability=durability,
        )
    except BaseException as error:  # Ctrl-C included: it must not leave a server behind
        if server is not None:
            server.stop()
        if embedded is not None and embedded.started:
            log.warning("start-up failed: stopping the embedded Redis this process started")
            # The name the daemon gives its connections, so that none of ours counts as another.
            stop_embedded(embedded.url, f"cronlease-{settings.replica_id}")
        if isinstance(error, (OSError, *REDIS_ERRORS)):
            raise UsageError(f"start-up failed: {error}") from None
        raise


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
