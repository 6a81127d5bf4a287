"""Celery on RabbitMQ: each run the task message Celery's own client publishes, so a
`celery worker` with an amqp:// broker executes it.

The message is protocol v2 as targets/celery.py builds it for the Redis broker (its headers and
body, reused, not copied), carried as kombu's py-amqp transport carries it (kombu 5.7.0
transport/pyamqp.py `Channel.prepare_message`: the headers become the AMQP application headers,
the properties the AMQP basic properties; checked against what `app.send_task` publishes):
- application headers: task, id (= the run id), root_id, parent_id, lang, argsrepr, kwargsrepr,
  origin, retries, timelimit, periodic_task_name, ... and the run's fields as `cronlease_<field>`
  (a bound task reads `self.request.cronlease_fire_time`);
- properties: correlation_id = the run id, content_type application/json, content_encoding
  utf-8, delivery_mode 2 (persistent), priority (the queue's `priority:`; on RabbitMQ a higher
  number is a higher priority, and only a queue declared with x-max-priority uses it);
- body: the JSON `[args, kwargs, {"callbacks", "errbacks", "chain", "chord"}]`.

Published to the queue's `name` through the default exchange (a Celery worker declares its queue
durable, with an exchange of the same name bound by the same routing key, so the default
exchange reaches it too), or to `exchange:` with `routing_key:`. Confirms, `mandatory`, the
bounded waits and the guarantee are rabbitmq.py's: at-least-once; a run is published twice only
when the relay dies between the broker's confirm and the XACK, or the connection fails between
a publish and its confirm, and those runs are counted as redelivered. Celery has no dedup by task
id; a worker that must not run a task twice can skip an id it has seen.
"""

from __future__ import annotations

import json
from typing import Any

from scheduler.core.queues import QueueSpec
from scheduler.targets.celery import CeleryEncoder
from scheduler.targets.encoding import Run
from scheduler.targets.relay.base import OutboxRun
from scheduler.targets.relay.rabbitmq import TIMEOUT_S, RabbitDeliverer, epoch_s


def encoding_run(run: OutboxRun) -> Run:
    """An outbox run as the in-Redis target modules take it (targets/encoding.py)."""
    fields = run.fields
    args = run.args
    enqueued_at_text = fields.get("enqueued_at", "")
    return Run(
        run_id=run.run_id,
        schedule=fields.get("schedule", ""),
        job=fields.get("job", ""),
        args=tuple(args) if isinstance(args, list) else dict(args),
        args_json=fields.get("args") or "{}",
        queue=fields.get("queue", ""),
        fire_time=fields.get("fire_time", ""),
        fire_ts=int(fields.get("fire_ts") or 0),
        enqueued_at=epoch_s(enqueued_at_text),
        enqueued_at_text=enqueued_at_text,
        trigger=fields.get("trigger", ""),
        token=fields.get("token", ""),
        replica=fields.get("replica", ""),
    )


class CeleryAmqpDeliverer(RabbitDeliverer):
    """Runs -> a Celery queue on RabbitMQ, as protocol v2 task messages."""

    def __init__(self, spec: QueueSpec, *, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(spec, timeout_s=timeout_s)
        self._encoder = CeleryEncoder(spec)
        self._priority = int(spec.options.get("priority", 0))

    def message(self, run: OutboxRun) -> tuple[bytes, dict[str, Any]]:
        task = encoding_run(run)
        # kombu's json serializer: json.dumps with its default separators, utf-8.
        body = json.dumps(self._encoder.body(task)).encode("utf-8")
        properties = {
            "content_type": "application/json",
            "content_encoding": "utf-8",
            "headers": self._encoder.headers(task),
            "delivery_mode": 2,
            "priority": self._priority,
            "correlation_id": task.run_id,  # as_task_v2: correlation_id = task id
        }
        return body, properties
