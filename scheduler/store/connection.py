"""Connecting to Redis, and telling people what its errors mean: per episode, with backoff."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import redis
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.core.durations import format_duration

log = logging.getLogger(__name__)

# What a Redis call can raise that means "Redis trouble, retry": redis-py's cluster errors
# (SlotNotCoveredError, ClusterDownError's cousins) do not derive from RedisError.
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
)


def redact(url: str) -> str:
    """The URL with every password replaced by `***`, fit for logs, errors and status output.

    Handles the multi-host forms (`redis+sentinel://u:p@h1:26379,h2:26379/name`) and password
    query parameters (`?password=...`, `?sentinel_password=...`) as well as redis-py's own.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "?" in netloc:  # no path: `redis://h:1?password=x`
        netloc, question, query = netloc.partition("?")
        slash, tail = "", question + query
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    path, question, query = tail.partition("?")
    if question:
        query = "&".join(_redact_param(param) for param in query.split("&"))
    return f"{scheme}://{netloc}{slash}{path}{question}{query}"


def _redact_param(param: str) -> str:
    name, equals, _ = param.partition("=")
    return f"{name}=***" if equals and "password" in name.lower() else param


# (socket timeout in seconds, client name) -> a client. The daemon gets one of these, so how
# Redis is reached (URL, TLS, Sentinel, Cluster) is decided in one place, at start-up.
Connector = Callable[[float, str], Redis]


def url_connector(url: str) -> Connector:
    def make(socket_timeout_s: float, client_name: str) -> Redis:
        return connect(url, socket_timeout_s, client_name)

    return make


def connect(url: str, socket_timeout_s: float, client_name: str) -> Redis:
    """A client that never retries on its own: every retry decision is ours, against the lease."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        client_name=client_name,
    )


_MEANINGS: list[tuple[type[Exception], str, str]] = [
    # Order matters: BusyLoadingError is a ConnectionError, ReadOnly and NoPermission are
    # ResponseErrors.
    (
        redis.exceptions.BusyLoadingError,
        "loading",
        "Redis is loading its data set after a restart; waiting until it is ready",
    ),
    (
        redis.exceptions.ReadOnlyError,
        "readonly",
        "Redis answered READONLY: this server is a replica (a failover happened?); "
        "not leading until a primary accepts the lease",
    ),
    (
        redis.exceptions.NoPermissionError,
        "noperm",
        "Redis refused a command (NOPERM): the ACL user lacks a permission cronlease needs",
    ),
    (
        redis.exceptions.TimeoutError,
        "timeout",
        "Redis did not answer in time; retrying with backoff, fenced writes keep this safe",
    ),
    (
        redis.exceptions.ConnectionError,
        "connection",
        "cannot reach Redis (refused or reset); retrying with backoff",
    ),
    (redis.exceptions.ResponseError, "response", "Redis returned an error"),
    (
        redis.exceptions.RedisClusterException,
        "connection",
        "the Redis Cluster cannot serve our slot right now (resharding or a node down); "
        "retrying with backoff",
    ),
]


NOREPLICAS_MEANING = (
    "Redis refused the write (NOREPLICAS): fewer replicas than its min-replicas-to-write are in "
    "sync; not leading until they are back"
)


def classify(error: Exception) -> tuple[str, str]:
    """(kind, a sentence saying what it means) for a Redis error."""
    # redis-py has no class for NOREPLICAS (min-replicas-to-write): it keeps the prefix.
    if isinstance(error, redis.exceptions.ResponseError) and "NOREPLICAS" in str(error)[:40]:
        return "noreplicas", NOREPLICAS_MEANING
    for cls, kind, meaning in _MEANINGS:
        if isinstance(error, cls):
            if kind == "response":
                return _wrapped(str(error)) or (kind, meaning)
            return kind, meaning
    return "other", "unexpected Redis client error"


def _wrapped(message: str) -> tuple[str, str] | None:
    """Redis 6.2 wraps an error raised inside a Lua script ("ERR Error running script ...:
    -READONLY You can't write ..."), so redis-py sees a plain ResponseError: look inside."""
    for prefix, kind in (("-READONLY", "readonly"), ("-NOPERM", "noperm"), ("-LOADING", "loading")):
        if prefix in message:
            return next((k, m) for _, k, m in _MEANINGS if k == kind)
    return None


# Gaps between the WARNINGs of one long episode: often enough at first that someone watching the
# log sees it is still going on, then at most every 5 minutes, so an outage of hours stays legible
# without a line per retry (those are at DEBUG).
REPEAT_GAPS_S: tuple[float, ...] = (10.0, 30.0, 60.0, 120.0, 300.0)


class ErrorEpisodes:
    """Logs the first error of an episode loudly, again at growing intervals while it lasts
    (`REPEAT_GAPS_S`, with the attempts and the time since the last success), and the recovery
    once; every other failure at DEBUG.

    `failed` and `recovered` are called after every Redis call of a loop, so they also count
    attempts and remember the last success. `now` is the clock (monotonic seconds), injectable
    so tests move time instead of waiting for it.
    """

    def __init__(self, where: str, *, now: Callable[[], float] = time.monotonic) -> None:
        self._where = where
        self._now = now
        self._kind: str | None = None
        self._count = 0
        self._since = 0.0
        self._started = now()
        self._last_success: float | None = None
        self._repeats = 0
        self._next_warning = 0.0

    @property
    def in_episode(self) -> bool:
        return self._kind is not None

    def failed(self, error: Exception) -> str:
        kind, meaning = classify(error)
        now = self._now()
        self._count += 1
        if self._kind != kind:
            if self._kind is None:
                self._since = now
                self._repeats = 0
            self._kind = kind
            self._schedule_repeat(now)
            log.warning("%s: %s (%s: %s)", self._where, meaning, type(error).__name__, error)
        elif now >= self._next_warning:
            self._repeats += 1
            self._schedule_repeat(now)
            log.warning(
                "%s: still failing: %d attempts over %s; %s (%s: %s: %s)",
                self._where,
                self._count,
                format_duration(round(now - self._since)),
                self._last_success_text(now),
                meaning,
                type(error).__name__,
                error,
            )
        else:
            log.debug("%s: still failing: %s", self._where, error)
        return kind

    def recovered(self) -> None:
        now = self._now()
        if self._kind is not None:
            log.warning(
                "%s: Redis is back after %d failed calls over %.1f s",
                self._where,
                self._count,
                now - self._since,
            )
        self._kind = None
        self._count = 0
        self._last_success = now

    def _schedule_repeat(self, now: float) -> None:
        # Counted from the last WARNING, so a change of kind (which is said at once) also puts
        # the next reminder a full gap away instead of right behind it.
        gap_s = REPEAT_GAPS_S[min(self._repeats, len(REPEAT_GAPS_S) - 1)]
        self._next_warning = now + gap_s

    def _last_success_text(self, now: float) -> str:
        if self._last_success is None:
            return f"no success yet (started {format_duration(round(now - self._started))} ago)"
        return f"last success {format_duration(round(now - self._last_success))} ago"


class Backoff:
    """Exponential backoff with full jitter, reset on success."""

    def __init__(self, base_s: float = 0.05, cap_s: float = 2.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self._attempt = 0

    def next_delay(self, cap_s: float | None = None) -> float:
        cap = min(self.cap_s, cap_s) if cap_s is not None else self.cap_s
        delay = min(cap, self.base_s * (2**self._attempt))
        self._attempt = min(self._attempt + 1, 16)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._attempt = 0


def client_db(client: Redis) -> int:
    """The logical database a client's keys are in (0 for a cluster client)."""
    pool = getattr(client, "connection_pool", None)
    return int(pool.connection_kwargs.get("db", 0) or 0) if pool is not None else 0


def is_cluster(client: Redis) -> bool:
    """A Redis Cluster client (it has no single connection pool)."""
    return getattr(client, "connection_pool", None) is None
