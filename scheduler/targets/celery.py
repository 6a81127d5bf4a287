"""Celery 5.x on the Redis broker: a run as the task message `apply_async` would have LPUSHed.

What a Celery client writes, read from celery 5.7.0 and kombu 5.7.0 (checked against a message
that `app.send_task` itself wrote):
- The queue is a Redis list named after the queue; kombu LPUSHes (kombu/transport/redis.py
  `Channel._put`) and the worker BRPOPs (`_brpop_start`), so the order is FIFO.
- Priorities: `PRIORITY_STEPS = [0, 3, 6, 9]`; a priority maps DOWN to its step (`priority()`,
  bisect) and every step but 0 has a list of its own, `<queue>\\x06\\x16<step>` (`_q_for_pri`,
  `sep`). The worker BRPOPs the base list first: on Redis, 0 is the highest priority.
- `global_keyprefix` (a transport option) is prepended to every key by kombu's
  `PrefixedStrictRedis` (`GlobalKeyPrefixMixin._prefix_args`), after `_q_for_pri`.
- The envelope is `{"body", "content-encoding", "content-type", "headers", "properties"}`
  (kombu/transport/virtual/base.py `prepare_message`), its body base64 of the serialized body
  and `body_encoding`, `delivery_tag` and `delivery_info` added by `_inplace_augment_message`.
- Protocol v2 (celery/app/amqp.py `as_task_v2`): the headers below and the body
  `[args, kwargs, {"callbacks", "errbacks", "chain", "chord"}]`. The worker knows v2 by the
  `task` header.

The task id IS the run id (Celery puts no rule on it). The run's fields ride as headers
`cronlease_<field>`: celery/worker/request.py copies every header into the request dict, so a
bound task reads `self.request.cronlease_fire_time`. No binding set is written: a message whose
`delivery_info.exchange` is "" is routed by its routing key alone, on restore too
(virtual/base.py `_lookup`, anon exchange), and the worker declares its bindings itself.

Celery has no job key and no dedup by task id, so there is no guard: the cursor alone makes a
run exactly once in the queue (a worker-side redelivery after visibility_timeout is Celery's).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.core.queues import QueueSpec
from scheduler.targets.encoding import Length, Run, Writes

# kombu/transport/redis.py: `PRIORITY_STEPS` and `Channel.sep`.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"
# celery/app/amqp.py `AMQP.argsrepr_maxsize` / `kwargsrepr_maxsize`.
REPR_MAXSIZE = 1024
# kombu makes a uuid4 per publish (virtual/base.py `_next_delivery_tag`); ours is a uuid5 of the
# run id, so the payload stays a pure function of the run and still unique per run.
_DELIVERY_TAG_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "cronlease:celery:delivery_tag")
HEADER_PREFIX = "cronlease_"


def priority_step(priority: int) -> int:
    """kombu's `Channel.priority`: the highest step not above `priority` (5 -> 3, 9 -> 9)."""
    return max(step for step in PRIORITY_STEPS if step <= priority)


def queue_key(prefix: str, name: str, priority: int = 0) -> str:
    """The list a message of `priority` goes to (`_q_for_pri`, then the global key prefix)."""
    step = priority_step(priority)
    return f"{prefix}{name}{PRIORITY_SEP}{step}" if step else f"{prefix}{name}"


def _saferepr(value: object) -> str:
    # celery.utils.saferepr.saferepr equals repr() for JSON values up to `maxsize`; past it,
    # Celery cuts the text and ends it with "..." (it is for display: Flower, logs, events).
    text = repr(value)
    return text if len(text) <= REPR_MAXSIZE else text[: REPR_MAXSIZE - 3] + "..."


class CeleryEncoder:
    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        self._prefix = str(spec.options.get("global_keyprefix", ""))
        self._priority = int(spec.options.get("priority", 0))
        self._key = queue_key(self._prefix, spec.name, self._priority)

    def job_id(self, run_id: str) -> str:
        return run_id

    def lengths(self) -> Sequence[Length]:
        # The worker consumes all four lists of the queue, whatever priority we write with.
        return tuple(
            Length(queue_key(self._prefix, self.spec.name, step), "list") for step in PRIORITY_STEPS
        )

    def body(self, run: Run) -> list[Any]:
        """Protocol v2's body: [args, kwargs, embed] (amqp.py `as_task_v2`)."""
        args, kwargs = _split_args(run.args)
        embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
        return [args, kwargs, embed]

    def headers(self, run: Run) -> dict[str, Any]:
        """The v2 headers, in `as_task_v2`'s order, then ours (as `send_task_message` merges
        custom headers last: `headers2.update(headers)`)."""
        args, kwargs = _split_args(run.args)
        headers: dict[str, Any] = {
            "lang": "py",
            "task": run.job,
            "id": run.run_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": run.run_id,  # as_task_v2: an empty root_id defaults to the task id
            "parent_id": None,
            "argsrepr": _saferepr(tuple(args)),
            "kwargsrepr": _saferepr(kwargs),
            # apply_async's default is anon_nodename() `gen<pid>@<host>`; this names the leader.
            "origin": f"cronlease@{run.replica}",
            # None (what send_task writes): the task's own ignore_result decides (request.py).
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
            # django-celery-beat's name for the schedule behind a task (calling.rst).
            "periodic_task_name": run.schedule,
        }
        for field, value in run.meta().items():
            headers[HEADER_PREFIX + field] = value
        return headers

    def envelope(self, run: Run) -> dict[str, Any]:
        """The JSON object kombu LPUSHes (before json.dumps)."""
        body = json.dumps(self.body(run)).encode("utf-8")  # kombu's json: default separators
        return {
            "body": base64.b64encode(body).decode("ascii"),  # virtual/base.py Base64 codec
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": self.headers(run),
            "properties": {
                "correlation_id": run.run_id,  # as_task_v2: correlation_id = task id
                "reply_to": "",  # no client waits on a reply queue
                # django-celery-beat passes periodic_task_name as a publish option, so it lands
                # in the properties, where django-celery-results reads it.
                "periodic_task_name": run.schedule,
                "delivery_mode": 2,  # persistent (kombu messaging.py `_delivery_details`)
                "delivery_info": {"exchange": "", "routing_key": self.spec.name},
                "priority": self._priority,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid5(_DELIVERY_TAG_NAMESPACE, run.run_id)),
            },
        }

    def writes(self, run: Run) -> Writes:
        return Writes(ops=(("LPUSH", self._key, json.dumps(self.envelope(run))),), guard=None)


def _split_args(args: Mapping[str, Any] | tuple[Any, ...]) -> tuple[list[Any], dict[str, Any]]:
    """A mapping is keyword arguments, a tuple positional ones (DESIGN "Where runs go")."""
    if isinstance(args, tuple):
        return list(args), {}
    return [], dict(args)
