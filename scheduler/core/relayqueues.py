"""The `queues:` entries delivered through the outbox relay: their URLs and options, checked.

PostgreSQL, RabbitMQ, NATS JetStream, Celery on RabbitMQ, and any in-Redis target given a `url:`
of another Redis instance are reached by the leader's relay, not inside the enqueue script. A
URL never holds a literal password here: `${VAR}` parts are filled from the environment when the
relay connects, or the whole URL is read from `url_file:` (scheduler/targets/relay/secrets.py),
so schedules.yaml can be committed, shown and hashed without a secret in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from scheduler.core.schedule import Problem

# The URL schemes each target's client takes.
SCHEMES: dict[str, tuple[str, ...]] = {
    "postgres": ("postgres", "postgresql"),
    "rabbitmq": ("amqp", "amqps"),
    "nats": ("nats", "tls", "ws", "wss"),
    "celery": ("redis", "rediss", "unix", "amqp", "amqps", "pyamqp"),
}
REDIS_SCHEMES = ("redis", "rediss", "unix")
_VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_SECRET_PARAMS = ("password", "sentinel_password", "passwd", "pass")


def relayed_problems(
    queue: str,
    target: str,
    value: Mapping[Any, Any],
    where: Callable[[str], int],
    line: int,
) -> list[Problem]:
    """What is wrong with a relayed queue's url / url_file (and db beside a url)."""
    problems: list[Problem] = []
    has_url, has_file = "url" in value, "url_file" in value
    if has_url and has_file:
        problems.append(
            Problem(
                where("url_file"),
                f"queue {queue!r}: url and url_file contradict each other; keep one (url_file: "
                "a file holding the URL, e.g. a mounted secret)",
            )
        )
    if not has_url and not has_file:
        problems.append(
            Problem(
                line,
                f"queue {queue!r}: target {target} needs a url: (with ${{VAR}} for the "
                "password) or a url_file: holding it",
            )
        )
    if has_url:
        problems += _url_problems(queue, target, value["url"], where("url"))
    if has_file and (not isinstance(value["url_file"], str) or not value["url_file"].strip()):
        problems.append(
            Problem(where("url_file"), f"queue {queue!r}: url_file must be the path of a file")
        )
    if "db" in value and (has_url or has_file):
        problems.append(
            Problem(
                where("db"),
                f"queue {queue!r}: db and a url contradict each other: the url names the "
                "database (redis://host:6379/1); drop db:",
            )
        )
    return problems


def _url_problems(queue: str, target: str, url: object, line: int) -> list[Problem]:
    if not isinstance(url, str) or not url.strip():
        return [Problem(line, f"queue {queue!r}: url must be text, e.g. ${{BILLING_URL}}")]
    if _VARIABLE.fullmatch(url.strip()):
        return []  # all of it from the environment: checked when the relay connects
    scheme, sep, rest = url.partition("://")
    schemes = SCHEMES.get(target, REDIS_SCHEMES)
    if not sep or scheme.lower() not in schemes:
        return [
            Problem(
                line,
                f"queue {queue!r}: a {target} url starts with "
                + " or ".join(f"{s}://" for s in schemes)
                + f", not {url.split('://')[0]!r}",
            )
        ]
    netloc, _, tail = rest.partition("/")
    userinfo, at, _ = netloc.rpartition("@")
    password = userinfo.partition(":")[2] if at and ":" in userinfo else ""
    secret_params = [v for k, v in parse_qsl(tail.partition("?")[2]) if k.lower() in _SECRET_PARAMS]
    if any(p and not _VARIABLE.search(p) for p in (password, *secret_params)):
        return [
            Problem(
                line,
                f"queue {queue!r}: the url holds a password; schedules.yaml must not: write it "
                "as ${VAR} (e.g. amqp://app:${RABBIT_PASSWORD}@host/) and set VAR in "
                "cronlease's environment, or put the whole URL in a file named by url_file:",
            )
        ]
    return []


def relay_kind(target: str, options: Mapping[str, Any]) -> str | None:
    """How a queue is delivered by the relay, or None when it is not relayed: postgres,
    rabbitmq, nats, celery-amqp (Celery with an AMQP broker), remote-redis (an in-Redis target
    on another Redis instance)."""
    if target in ("postgres", "rabbitmq", "nats"):
        return target
    url = str(options.get("url") or "")
    if not url and not options.get("url_file"):
        return None
    if target == "celery" and url.lower().startswith(("amqp://", "amqps://", "pyamqp://")):
        return "celery-amqp"
    return "remote-redis"
