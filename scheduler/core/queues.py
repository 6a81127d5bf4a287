"""The `queues:` mapping: where each queue's runs go (DESIGN "Where runs go"), validated.

A queue the mapping does not name is a cronlease stream. Each target has its own options, their
defaults and the combinations that contradict each other; everything is checked here, with the
line it was written on, so a typo is found by `cronlease validate` and not at the first fire.
Pure: nothing here knows Redis, only what the user wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from scheduler.core.durations import parse_duration_s
from scheduler.core.relayqueues import relay_kind, relayed_problems
from scheduler.core.schedule import Problem
from scheduler.core.schedulecheck import NAME_PATTERN, did_you_mean
from scheduler.core.yamlsource import LineMap

# Targets written inside the enqueue script, in the scheduler's own Redis (or, with a url: of
# another Redis instance, through the outbox relay).
IN_REDIS_TARGETS = ("stream", "celery", "rq", "sidekiq", "arq", "dramatiq", "bullmq")
# Targets outside Redis: always through the outbox relay.
RELAYED_TARGETS = ("postgres", "rabbitmq", "nats")
TARGETS = IN_REDIS_TARGETS + RELAYED_TARGETS


@dataclass(frozen=True)
class QueueSpec:
    """One queue's delivery, validated, with every option's default filled in."""

    queue: str  # the name schedules use
    target: str  # one of IN_REDIS_TARGETS
    name: str  # the target's own queue name (default: the queue's name)
    db: int | None = None  # a logical database of the scheduler's Redis; None: the same one
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    line: int = 0

    @property
    def relayed(self) -> bool:
        """Delivered by the leader's outbox relay (outside the scheduler's Redis)."""
        return relay_kind(self.target, self.options) is not None

    def describe(self) -> str:
        """How `validate` and `status` name where this queue's runs go."""
        if self.target == "stream":
            return "stream"
        if self.target == "postgres":
            where = f"postgres table {self.options.get('table')}"
            if self.options.get("mode") == "procrastinate":
                where = f"procrastinate queue {self.name!r}"
        elif self.target == "nats":
            where = f"nats subject {self.name!r}"
        else:
            where = f"{self.target} queue {self.name!r}"
        if self.relayed:
            return f"{where}, through the outbox relay"
        return where if self.db is None else f"{where} in db {self.db}"


def stream_queue(queue: str) -> QueueSpec:
    return QueueSpec(queue=queue, target="stream", name=queue)


def _choice(*allowed: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")
        return value

    return check


def _text(value: object) -> object:
    if not isinstance(value, str) or not value or "\n" in value:
        raise ValueError(f"must be a non-empty one-line text, not {value!r}")
    return value


def _bool(value: object) -> object:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def _int_between(low: int, high: int) -> Callable[[object], object]:
    def check(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, not {value!r}")
        return value

    return check


def _positive_duration(value: object) -> object:
    seconds = parse_duration_s(value)
    if seconds <= 0:
        raise ValueError("must be longer than 0s")
    return seconds


def _retry(value: object) -> object:
    if isinstance(value, bool) or (isinstance(value, int) and 0 <= value <= 1000):
        return value
    raise ValueError(f"must be true, false or a number of retries, not {value!r}")


def _key_prefix(value: object) -> object:
    if not isinstance(value, str) or "\n" in value:
        raise ValueError(f"must be one-line text, not {value!r}")
    return value


def _sql_name(value: object) -> object:
    if not isinstance(value, str) or not _SQL_NAME.fullmatch(value):
        raise ValueError(
            f"must be a table name (letters, digits, _, optionally schema.table), not {value!r}"
        )
    return value


_SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")

# Per target: option -> (check, default). `name` and `db` are common to all in-Redis targets.
_Option = tuple[Callable[[object], object], object]
OPTIONS: dict[str, dict[str, _Option]] = {
    "stream": {},
    "celery": {
        # kombu's priority steps: 0 (the base list) is the HIGHEST on Redis; 3, 6, 9 get lists
        # of their own named `<queue>\x06\x16<step>`.
        "priority": (_int_between(0, 9), 0),
        # kombu's `global_keyprefix` transport option, when the Celery app sets one.
        "global_keyprefix": (_key_prefix, ""),
    },
    "rq": {
        "serializer": (_choice("pickle", "json"), "pickle"),
        "timeout": (_positive_duration, 180),
        "result_ttl": (_positive_duration, 500),
        "failure_ttl": (_positive_duration, 365 * 86400),
    },
    "sidekiq": {
        "retry": (_retry, True),
        # Sidekiq 8 writes created_at/enqueued_at as epoch milliseconds; 6 and 7 as seconds.
        "timestamps": (_choice("seconds", "milliseconds"), "seconds"),
        # Sidekiq 6 with redis-namespace prefixes every key with `<namespace>:`.
        "namespace": (_key_prefix, ""),
    },
    "arq": {
        # arq's default expires_extra_ms: a job key not picked up by then expires unrun.
        "expires": (_positive_duration, 86400),
    },
    "dramatiq": {
        "namespace": (_text, "dramatiq"),
    },
    # Relayed (scheduler/core/relayqueues.py checks url / url_file).
    "postgres": {
        "table": (_sql_name, "cronlease_runs"),
        "ledger": (_sql_name, "cronlease_delivered"),
        # table: rows in `table`; procrastinate: jobs through Procrastinate's defer function.
        "mode": (_choice("table", "procrastinate"), "table"),
    },
    "rabbitmq": {
        "exchange": (_key_prefix, ""),  # "": the default exchange, routed by queue name
        "routing_key": (_key_prefix, ""),  # "": the queue's name
    },
    "nats": {
        "stream": (_key_prefix, ""),  # the JetStream stream to check ("": found by subject)
    },
    "bullmq": {
        "prefix": (_text, "bull"),
        # The Queue's streams.events.maxLen: the events stream is trimmed to about this.
        "max_len_events": (_int_between(1, 10**9), 10000),
    },
}
COMMON_KEYS = ("target", "name", "db", "url", "url_file")
RELAYED_KEYS = ("target", "name", "url", "url_file")

# Target queue names: what each system accepts as its own queue name.
_BAD_NAME_CHARS = {"bullmq": ":", "rq": ":"}
# dramatiq/actor.py _queue_name_re; `.DQ` and `.XQ` name its delay and dead-letter queues.
_DRAMATIQ_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9._-]*")


def _check_name(target: str, name: object) -> None:
    """Raise ValueError when `target` would refuse `name` as its own queue name."""
    _text(name)
    bad = _BAD_NAME_CHARS.get(target, "")
    if bad and bad in str(name):
        raise ValueError(f"{name!r} contains {bad!r}, which {target} reserves")
    if target == "nats" and (any(c in str(name) for c in "*> \t") or str(name).endswith(".")):
        raise ValueError(
            f"{name!r} is not a subject to publish to: no wildcards (* >), spaces or trailing dot"
        )
    if target == "dramatiq" and (
        not _DRAMATIQ_NAME.fullmatch(str(name)) or str(name).endswith((".DQ", ".XQ"))
    ):
        raise ValueError(
            f"{name!r} is not a Dramatiq queue name: a letter or _ first, then letters, "
            "digits, '.', '_' or '-', and not ending in .DQ or .XQ (its delay and dead "
            "letter queues)"
        )


def parse_queues(root: LineMap, problems: list[Problem]) -> Mapping[str, QueueSpec]:
    """The `queues:` mapping of the document (empty when absent); problems are appended."""
    body = root.get("queues")
    specs: dict[str, QueueSpec] = {}
    if body is None:
        return MappingProxyType(specs)
    if not isinstance(body, LineMap):
        problems.append(
            Problem(root.key_lines["queues"], "queues must be a mapping of queue name -> target")
        )
        return MappingProxyType(specs)
    for queue, value in body.items():
        line = body.key_lines[queue]
        spec = _parse_queue(queue, line, value, problems)
        if spec is not None:
            specs[str(queue)] = spec
    return MappingProxyType(specs)


def _parse_queue(
    queue: object, line: int, value: object, problems: list[Problem]
) -> QueueSpec | None:
    if not isinstance(queue, str) or not NAME_PATTERN.fullmatch(queue):
        problems.append(
            Problem(
                line,
                f"queue name {queue!r} is not allowed; use 1 to 128 letters, digits, '_', '.' "
                "or '-' (quote it if YAML reads it as something else)",
            )
        )
        return None
    if not isinstance(value, LineMap):
        problems.append(
            Problem(line, f"queue {queue!r} must be a mapping with a target, e.g. {{target: rq}}")
        )
        return None
    found = len(problems)

    def where(key: object) -> int:
        return value.key_lines.get(key, line)

    target = value.get("target")
    if "target" not in value:
        problems.append(
            Problem(line, f"queue {queue!r} needs a target: one of {', '.join(TARGETS)}")
        )
        return None
    if target not in TARGETS:
        problems.append(
            Problem(
                where("target"),
                f"queue {queue!r}: unknown target {target!r}; "
                + did_you_mean(str(target), TARGETS).replace("known keys", "known targets"),
            )
        )
        return None
    target = str(target)
    known = OPTIONS[target]
    common = RELAYED_KEYS if target in RELAYED_TARGETS else COMMON_KEYS
    allowed = ("target",) if target == "stream" else common + tuple(known)
    relayed = target in RELAYED_TARGETS or "url" in value or "url_file" in value
    if relayed and target != "stream":
        problems += relayed_problems(queue, target, value, where, line)
    for key in value:
        if key not in allowed:
            problems.append(
                Problem(
                    where(key),
                    f"queue {queue!r}: unknown option {key!r} for target {target}; "
                    + did_you_mean(str(key), allowed).replace("known keys", "known options"),
                )
            )
    name = value.get("name", queue)
    try:
        if target != "stream":  # a stream's `name:` is an unknown option, reported above
            _check_name(target, name)
    except ValueError as error:
        if "name" in value:
            problems.append(Problem(where("name"), f"queue {queue!r}: name {error}"))
        else:  # the default, the queue's own name, is one the target refuses
            problems.append(
                Problem(
                    line,
                    f"queue {queue!r}: its default name {error}; "
                    f"write a name: that {target} accepts",
                )
            )
    db = value.get("db")
    if "db" in value:
        try:
            _int_between(0, 65535)(db)
        except ValueError as error:
            problems.append(Problem(where("db"), f"queue {queue!r}: db {error}"))
    options: dict[str, Any] = {}
    for key, (check, default) in known.items():
        if key not in value:
            options[key] = default
            continue
        try:
            options[key] = check(value[key])
        except ValueError as error:
            problems.append(Problem(where(key), f"queue {queue!r}: {key} {error}"))
    for key in ("url", "url_file"):  # checked by relayed_problems; resolved by the relay
        if isinstance(value.get(key), str):
            options[key] = value[key]
    # .get: an option whose value was refused above has no entry.
    sidekiq_8 = options.get("timestamps") == "milliseconds"
    if target == "sidekiq" and options.get("namespace") and sidekiq_8:
        problems.append(
            Problem(
                where("timestamps"),
                f"queue {queue!r}: namespace and timestamps: milliseconds contradict each other: "
                "namespaced keys are Sidekiq 6 (redis-namespace), millisecond timestamps are "
                "Sidekiq 8, which has no namespaces; drop one of them",
            )
        )
    if len(problems) > found:
        return None
    return QueueSpec(
        queue=queue,
        target=target,
        name=str(name),
        db=None if db is None else int(db),
        options=MappingProxyType(options),
        line=line,
    )
