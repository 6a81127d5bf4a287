"""Settings: one value object built from flags and `CRONLEASE_*` environment variables.

Every flag `--some-flag` has the variable `CRONLEASE_SOME_FLAG`; the flag wins.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass, field

from scheduler.core.durations import parse_duration_s

ENV_PREFIX = "CRONLEASE_"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


def env_default(flag: str, default: str | None) -> str | None:
    return os.environ.get(env_name(flag), default)


def duration_arg(text: str) -> float:
    """argparse type for durations; accepts `10s`, `1500ms`-free forms and plain/decimal seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(parse_duration_s(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclass(frozen=True)
class Settings:
    config_path: str = "schedules.yaml"
    redis_url: str | None = None
    namespace: str = "cronlease"
    replica_id: str = ""
    metrics_port: int = 9464
    metrics_host: str = "0.0.0.0"
    lease_ttl_s: float = 10.0
    redis_timeout_s: float | None = None  # default: min(2s, lease TTL / 4)
    # Connection options besides the URL (store/topology/options.py). Secrets stay out of repr().
    redis_username: str | None = None
    redis_password: str | None = field(default=None, repr=False)
    redis_password_file: str | None = None
    redis_sentinel_password: str | None = field(default=None, repr=False)
    redis_sentinel_password_file: str | None = None
    redis_tls_ca: str | None = None
    redis_tls_cert: str | None = None
    redis_tls_key: str | None = None
    redis_tls_server_name: str | None = None
    # Durability (scheduler/durability.py): WAIT for this many replicas after lease and enqueue
    # writes; 0 is off.
    redis_wait_replicas: int = 0
    redis_wait_timeout_s: float | None = None  # default: half the Redis timeout
    schedule_metrics: str = "auto"  # per-schedule metric series: auto | on | off
    log_format: str = "text"
    log_level: str = "INFO"

    @staticmethod
    def default_replica_id() -> str:
        return f"{socket.gethostname()}-{os.getpid()}"


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every command shares, each defaulting from its environment variable."""

    def add(flag: str, default: str | None, help_text: str, **kwargs: object) -> None:
        parser.add_argument(
            flag,
            default=env_default(flag, default),
            help=f"{help_text} [env {env_name(flag)}]",
            **kwargs,  # type: ignore[arg-type]
        )

    add("--config", "schedules.yaml", "the schedules file (default: %(default)s)", metavar="FILE")
    add(
        "--redis-url",
        None,
        "redis://, rediss://, unix://, redis+sentinel://[user:pass@]host:26379,.../MASTER[/db], "
        "redis+cluster://host:port,... (rediss+ for TLS) (default: an embedded Redis under "
        ".cronlease/ beside the config)",
        metavar="URL",
    )
    add("--namespace", "cronlease", "Redis key namespace (default: %(default)s)")
    add("--replica-id", None, "this replica's id (default: <hostname>-<pid>)", metavar="ID")
    add(
        "--metrics-port",
        "9464",
        "HTTP port for /metrics, /healthz, /readyz; 0 turns it off (default: %(default)s)",
        type=int,
    )
    add("--metrics-host", "0.0.0.0", "HTTP bind address (default: %(default)s)")
    add(
        "--lease-ttl",
        "10s",
        "leader lease time-to-live (default: %(default)s)",
        type=duration_arg,
        metavar="DURATION",
    )
    add(
        "--redis-timeout",
        None,
        "Redis socket timeout (default: the lease TTL / 4, at most 2s)",
        type=duration_arg,
        metavar="DURATION",
    )
    add(
        "--redis-username",
        None,
        "Redis ACL user (overrides the URL's)",
        metavar="USER",
    )
    add(
        "--redis-password",
        None,
        "Redis password (overrides the URL's); a flag shows in `ps`, so prefer the variable or "
        "--redis-password-file",
        metavar="PASSWORD",
    )
    add(
        "--redis-password-file",
        None,
        "file holding the Redis password, e.g. a mounted Kubernetes Secret; read on every new "
        "connection and wins over the URL and --redis-password",
        metavar="FILE",
    )
    add(
        "--redis-sentinel-password",
        None,
        "password of the Sentinel processes (with redis+sentinel:// URLs)",
        metavar="PASSWORD",
    )
    add(
        "--redis-sentinel-password-file",
        None,
        "file holding the Sentinel password; wins over --redis-sentinel-password",
        metavar="FILE",
    )
    add("--redis-tls-ca", None, "CA certificate(s) to verify Redis with (PEM)", metavar="FILE")
    add("--redis-tls-cert", None, "client certificate for TLS (PEM)", metavar="FILE")
    add("--redis-tls-key", None, "private key of --redis-tls-cert (PEM)", metavar="FILE")
    add(
        "--redis-tls-server-name",
        None,
        "name to expect in Redis's certificate (and send as SNI) instead of the address "
        "connected to",
        metavar="NAME",
    )
    add(
        "--redis-wait-replicas",
        "0",
        "after each lease and enqueue write, WAIT until this many replicas have it; a write "
        "they do not acknowledge in time is not acted on (default: 0, off)",
        type=int,
        metavar="N",
    )
    add(
        "--redis-wait-timeout",
        None,
        "how long WAIT may take (default: half the Redis timeout; must be shorter than it)",
        type=duration_arg,
        metavar="DURATION",
    )
    add(
        "--schedule-metrics",
        "auto",
        "per-schedule metric series: on, off, or auto (on up to 1000 schedules) "
        "(default: %(default)s)",
        choices=["auto", "on", "off"],
    )
    add("--log-format", "text", "text or json (default: %(default)s)", choices=["text", "json"])
    add(
        "--log-level",
        "INFO",
        "DEBUG, INFO, WARNING, ERROR (default: %(default)s)",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    lease_ttl = args.lease_ttl
    if isinstance(lease_ttl, str):  # an environment default is not passed through `type`
        lease_ttl = duration_arg(lease_ttl)
    wait_timeout = args.redis_wait_timeout
    if isinstance(wait_timeout, str):
        wait_timeout = duration_arg(wait_timeout)
    return Settings(
        config_path=args.config,
        redis_url=args.redis_url or None,
        namespace=args.namespace,
        replica_id=args.replica_id or Settings.default_replica_id(),
        metrics_port=int(args.metrics_port),
        metrics_host=args.metrics_host,
        lease_ttl_s=float(lease_ttl),
        redis_timeout_s=None if args.redis_timeout is None else float(args.redis_timeout),
        redis_username=args.redis_username or None,
        redis_password=args.redis_password or None,
        redis_password_file=args.redis_password_file or None,
        redis_sentinel_password=args.redis_sentinel_password or None,
        redis_sentinel_password_file=args.redis_sentinel_password_file or None,
        redis_tls_ca=args.redis_tls_ca or None,
        redis_tls_cert=args.redis_tls_cert or None,
        redis_tls_key=args.redis_tls_key or None,
        redis_tls_server_name=args.redis_tls_server_name or None,
        redis_wait_replicas=int(args.redis_wait_replicas),
        redis_wait_timeout_s=None if wait_timeout is None else float(wait_timeout),
        schedule_metrics=args.schedule_metrics,
        log_format=args.log_format,
        log_level=str(args.log_level).upper(),
    )
