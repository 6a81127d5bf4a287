"""Settings: one value object built from flags and `CRONLEASE_*` environment variables.

Every flag `--some-flag` has the variable `CRONLEASE_SOME_FLAG`; the flag wins. A command only
takes the flags it uses (`validate` and `next` only `--config`), and only those variables are read:
a daemon setting in the environment never breaks `cronlease validate`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from scheduler.cli.util import UsageError
from scheduler.core.durations import parse_duration_s

ENV_PREFIX = "CRONLEASE_"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


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


def int_arg(text: str) -> int:
    """argparse type for counts and ports, saying what was wrong rather than `invalid int value`."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def upper_arg(text: str) -> str:
    return text.strip().upper()


@dataclass(frozen=True)
class Flag:
    """One common flag: its option, its default as text, and how its text becomes a value.

    The default is text so that it goes through the same conversion as a value from the command
    line or from the environment, and is shown as the user would write it.
    """

    option: str
    default: str | None
    help: str  # `%(default)s` in it is replaced by the default
    convert: Callable[[str], object] = str
    choices: tuple[str, ...] = ()
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return env_name(self.option)

    def parse(self, text: str) -> object:
        """The value of `text`; ArgumentTypeError with a sentence if it is not one."""
        value = self.convert(text)
        if self.choices and value not in self.choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(self.choices)}")
        return value


FLAGS: tuple[Flag, ...] = (
    Flag("--config", "schedules.yaml", "the schedules file (default: %(default)s)", metavar="FILE"),
    Flag(
        "--redis-url",
        None,
        "redis://, rediss://, unix://, redis+sentinel://[user:pass@]host:26379,.../MASTER[/db], "
        "redis+cluster://host:port,... (rediss+ for TLS) (default: an embedded Redis under "
        ".cronlease/ beside the config)",
        metavar="URL",
    ),
    Flag("--namespace", "cronlease", "Redis key namespace (default: %(default)s)", metavar="NAME"),
    Flag("--replica-id", None, "this replica's id (default: <hostname>-<pid>)", metavar="ID"),
    Flag(
        "--metrics-port",
        "9464",
        "HTTP port for /metrics, /healthz, /readyz; 0 turns it off (default: %(default)s)",
        int_arg,
        metavar="PORT",
    ),
    Flag(
        "--metrics-host",
        None,
        "HTTP bind address (default: 0.0.0.0 with --redis-url; 127.0.0.1 on the embedded "
        "Redis, a single-machine mode)",
        metavar="ADDRESS",
    ),
    Flag(
        "--lease-ttl",
        "10s",
        "leader lease time-to-live (default: %(default)s)",
        duration_arg,
        metavar="DURATION",
    ),
    Flag(
        "--redis-timeout",
        None,
        "Redis socket timeout (default: the lease TTL / 4, at most 2s)",
        duration_arg,
        metavar="DURATION",
    ),
    Flag("--redis-username", None, "Redis ACL user (overrides the URL's)", metavar="USER"),
    Flag(
        "--redis-password",
        None,
        "Redis password (overrides the URL's); a flag shows in `ps`, so prefer the variable or "
        "--redis-password-file",
        metavar="PASSWORD",
    ),
    Flag(
        "--redis-password-file",
        None,
        "file holding the Redis password, e.g. a mounted Kubernetes Secret; read on every new "
        "connection and wins over the URL and --redis-password",
        metavar="FILE",
    ),
    Flag(
        "--redis-sentinel-password",
        None,
        "password of the Sentinel processes (with redis+sentinel:// URLs)",
        metavar="PASSWORD",
    ),
    Flag(
        "--redis-sentinel-password-file",
        None,
        "file holding the Sentinel password; wins over --redis-sentinel-password",
        metavar="FILE",
    ),
    Flag("--redis-tls-ca", None, "CA certificate(s) to verify Redis with (PEM)", metavar="FILE"),
    Flag("--redis-tls-cert", None, "client certificate for TLS (PEM)", metavar="FILE"),
    Flag("--redis-tls-key", None, "private key of --redis-tls-cert (PEM)", metavar="FILE"),
    Flag(
        "--redis-tls-server-name",
        None,
        "name to expect in Redis's certificate (and send as SNI) instead of the address "
        "connected to",
        metavar="NAME",
    ),
    Flag(
        "--redis-wait-replicas",
        "0",
        "after each lease and enqueue write, WAIT until this many replicas have it; a write "
        "they do not acknowledge in time is not acted on (default: 0, off)",
        int_arg,
        metavar="N",
    ),
    Flag(
        "--redis-wait-timeout",
        None,
        "how long WAIT may take (default: half the Redis timeout; must be shorter than it)",
        duration_arg,
        metavar="DURATION",
    ),
    Flag(
        "--schedule-metrics",
        "auto",
        "per-schedule metric series: on, off, or auto (on up to 1000 schedules) "
        "(default: %(default)s)",
        choices=("auto", "on", "off"),
    ),
    Flag(
        "--admin-token-file",
        None,
        "`run`: file holding the admin token (e.g. a mounted Kubernetes Secret) that turns on "
        "pause, resume and trigger on the status page at / (sent as `Authorization: Bearer`); "
        "without it the page is read-only",
        metavar="FILE",
    ),
    Flag(
        "--log-format",
        "text",
        "text or json (default: %(default)s)",
        choices=("text", "json"),
    ),
    Flag(
        "--log-level",
        "INFO",
        "DEBUG, INFO, WARNING, ERROR (default: %(default)s)",
        upper_arg,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
)
ALL_FLAGS: tuple[str, ...] = tuple(flag.option for flag in FLAGS)
# `validate` and `next` read the schedules file and nothing else: no Redis, no logging setup.
CONFIG_FLAGS: tuple[str, ...] = ("--config",)


@dataclass(frozen=True)
class Settings:
    config_path: str = "schedules.yaml"
    redis_url: str | None = None
    namespace: str = "cronlease"
    replica_id: str = ""
    metrics_port: int = 9464
    metrics_host: str | None = None  # None: see metrics_bind()
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
    admin_token_file: str | None = None  # the status page's actions; None: read-only
    log_format: str = "text"
    log_level: str = "INFO"

    @staticmethod
    def default_replica_id() -> str:
        return f"{socket.gethostname()}-{os.getpid()}"

    @property
    def metrics_bind(self) -> str:
        """Where the HTTP server listens: as given, else every interface when replicas share a
        Redis across machines, and loopback in the single-machine (embedded) mode, where nobody
        else should scrape or probe this machine's replicas."""
        if self.metrics_host:
            return self.metrics_host
        return "0.0.0.0" if self.redis_url else "127.0.0.1"


def add_flags(
    parser: argparse.ArgumentParser,
    options: Iterable[str] = ALL_FLAGS,
    flags: Iterable[Flag] = FLAGS,
) -> None:
    """Add these common flags. Each is None unless given: its variable and default are applied
    after parsing (`resolve`), so that a bad variable can be named as the variable."""
    by_option = {flag.option: flag for flag in flags}
    for option in options:
        flag = by_option[option]
        help_text = flag.help.replace("%(default)s", str(flag.default))
        parser.add_argument(
            flag.option,
            default=None,
            type=flag.convert,
            choices=flag.choices or None,
            metavar=flag.metavar,
            help=f"{help_text} [env {flag.env}]",
        )


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Every common flag: what the daemon and the commands that reach Redis take."""
    add_flags(parser, ALL_FLAGS)


def resolve(
    args: argparse.Namespace, environ: Mapping[str, str], flags: Iterable[Flag] = FLAGS
) -> dict[str, object]:
    """Each common flag the command took -> its value: the flag, else its variable, else its
    default. A bad variable is a UsageError naming the variable, not the flag nobody typed."""
    values: dict[str, object] = {}
    for flag in flags:
        if not hasattr(args, flag.dest):
            continue  # this command does not take it, so its variable means nothing here
        given = getattr(args, flag.dest)
        raw = environ.get(flag.env, "")
        if given is not None:
            values[flag.dest] = given
        elif raw.strip():  # empty is unset: what an EnvironmentFile `VAR=` or `${UNSET}` leaves
            try:
                values[flag.dest] = flag.parse(raw)
            except argparse.ArgumentTypeError as error:
                raise UsageError(
                    f"{flag.env}={shlex.quote(raw)}: {error}; fix or unset the variable, or "
                    f"pass {flag.option}"
                ) from None
        elif flag.default is not None:
            values[flag.dest] = flag.parse(flag.default)
    return values


def _text(values: Mapping[str, object], dest: str) -> str | None:
    value = values.get(dest)
    return str(value) if value is not None and value != "" else None


def _number(values: Mapping[str, object], dest: str) -> float | None:
    value = values.get(dest)
    return float(value) if isinstance(value, int | float) else None


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from the parsed command line and the environment (`os.environ` unless given).

    A setting the command does not take keeps the Settings default, which the flag defaults
    match (tests/cli/test_cli_offline.py proves it).
    """
    values = resolve(args, os.environ if environ is None else environ)
    base = Settings()
    lease_ttl_s = _number(values, "lease_ttl")
    metrics_port = _number(values, "metrics_port")
    wait_replicas = _number(values, "redis_wait_replicas")
    return Settings(
        config_path=_text(values, "config") or base.config_path,
        redis_url=_text(values, "redis_url"),
        namespace=_text(values, "namespace") or base.namespace,
        replica_id=_text(values, "replica_id") or Settings.default_replica_id(),
        metrics_port=base.metrics_port if metrics_port is None else int(metrics_port),
        metrics_host=_text(values, "metrics_host"),
        lease_ttl_s=base.lease_ttl_s if lease_ttl_s is None else lease_ttl_s,
        redis_timeout_s=_number(values, "redis_timeout"),
        redis_username=_text(values, "redis_username"),
        redis_password=_text(values, "redis_password"),
        redis_password_file=_text(values, "redis_password_file"),
        redis_sentinel_password=_text(values, "redis_sentinel_password"),
        redis_sentinel_password_file=_text(values, "redis_sentinel_password_file"),
        redis_tls_ca=_text(values, "redis_tls_ca"),
        redis_tls_cert=_text(values, "redis_tls_cert"),
        redis_tls_key=_text(values, "redis_tls_key"),
        redis_tls_server_name=_text(values, "redis_tls_server_name"),
        redis_wait_replicas=base.redis_wait_replicas
        if wait_replicas is None
        else int(wait_replicas),
        redis_wait_timeout_s=_number(values, "redis_wait_timeout"),
        schedule_metrics=_text(values, "schedule_metrics") or base.schedule_metrics,
        admin_token_file=_text(values, "admin_token_file"),
        log_format=_text(values, "log_format") or base.log_format,
        log_level=(_text(values, "log_level") or base.log_level).upper(),
    )
