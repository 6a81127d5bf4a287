"""The `--redis-*` options besides the URL: their checks and the connection kwargs they become.

--redis-password-file is read again for every new connection, so a rotated Kubernetes Secret
takes effect without a restart.

No client retries on its own (retry=Retry(NoBackoff(), 0)): every retry decision is the daemon's,
against the lease; sentinel.py and cluster.py say what that means per topology.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.connection import SSLConnection
from redis.credentials import CredentialProvider
from redis.retry import Retry

from scheduler.store.connection import redact
from scheduler.store.topology.url import SENTINEL, Topology, TopologyError


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


def no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


# -- secrets ----------------------------------------------------------------------------------


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


def credentials(
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


def with_server_name(base: type[SSLConnection], server_name: str) -> type[SSLConnection]:
    """A subclass of the connection class `base` that checks TLS against `server_name`."""
    if not hasattr(base, "_wrap_socket_with_ssl"):
        raise TopologyError(
            "--redis-tls-server-name needs a newer redis-py (SSLConnection._wrap_socket_with_ssl)"
        )
    return cast(
        "type[SSLConnection]",
        type(f"{base.__name__}Named", (_ServerNameMixin, base), {"server_name": server_name}),
    )


def tls_kwargs(options: RedisOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    if options.tls_ca:
        kwargs["ssl_ca_certs"] = options.tls_ca
    if options.tls_cert:
        kwargs["ssl_certfile"] = options.tls_cert
    if options.tls_key:
        kwargs["ssl_keyfile"] = options.tls_key
    return kwargs


# -- checks -----------------------------------------------------------------------------------


def check_options(topology: Topology, options: RedisOptions) -> None:
    """TopologyError for options that cannot work with this URL, or files we cannot read."""
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
