"""Dramatiq 2.x on the Redis broker: a run as the message `actor.send` would have enqueued.

What Dramatiq's client writes, read from dramatiq 2.2.1 (and checked against a message that
`send_with_options` itself wrote):
- `RedisBroker.enqueue` (dramatiq/brokers/redis.py) copies the message with a fresh
  `options.redis_message_id` ("each enqueued message must have a unique id in Redis", as a
  retry re-enqueues the same message_id) and runs dispatch.lua's "enqueue": `HSET
  <namespace>:<queue>.msgs <redis_message_id> <json>` and `RPUSH <namespace>:<queue>
  <redis_message_id>`. The worker's "fetch" LPOPs the ids (FIFO) and HMGETs their messages.
- dispatch.lua also ZADDs the CALLER's broker id to `<namespace>:__heartbeats__` on every
  command; that heartbeat only matters for a broker that fetches (its `__acks__` sets are what
  maintenance requeues when it dies), so a writer that never fetches need not have one: the
  real `dramatiq` worker runs a plain HSET + RPUSH (tests/targets/test_dramatiq.py).
- The message is `Message.asdict()` (dramatiq/message.py): queue_name, actor_name, args,
  kwargs, options, message_id, message_timestamp (Unix ms), JSON-encoded compactly
  (dramatiq/encoder.py `JSONEncoder`: separators (",", ":")).

The message_id IS the run id (any string; the worker reads it with
`CurrentMessage.get_current_message().message_id`). The run's fields ride in
`options["cronlease"]`: options is a free dict carried to the worker and its middleware.
Dramatiq has no job key and no dedup, so there is no guard: the cursor alone makes a run
exactly once in the queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.core.queues import QueueSpec
from scheduler.targets.encoding import Length, Run, Writes

# dramatiq makes a uuid4 per enqueue; ours is a uuid5 of the run id, so the payload is a pure
# function of the run and still unique per run (a retry gets a uuid4 from Dramatiq itself).
_REDIS_MESSAGE_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "cronlease:dramatiq:redis_message_id")


def redis_message_id(run_id: str) -> str:
    return str(uuid.uuid5(_REDIS_MESSAGE_ID_NAMESPACE, run_id))


class DramatiqEncoder:
    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        namespace = str(spec.options.get("namespace", "dramatiq"))
        # dispatch.lua: queue_full_name = namespace .. ":" .. queue_name; messages in ".msgs".
        self._queue_key = f"{namespace}:{spec.name}"
        self._messages_key = f"{self._queue_key}.msgs"
        # Delayed messages (retries with backoff) wait in "<queue>.DQ" (common.py dq_name).
        self._delay_key = f"{self._queue_key}.DQ"

    def job_id(self, run_id: str) -> str:
        return run_id

    def lengths(self) -> Sequence[Length]:
        return (Length(self._queue_key, "list"), Length(self._delay_key, "list"))

    def message(self, run: Run) -> dict[str, Any]:
        """`Message.asdict()` as RedisBroker.enqueue stores it (the caller's options first, then
        the redis_message_id that `message.copy(options=...)` adds)."""
        args, kwargs = _split_args(run.args)
        return {
            "queue_name": self.spec.name,
            "actor_name": run.job,
            "args": args,
            "kwargs": kwargs,
            "options": {
                "cronlease": run.meta(),
                "redis_message_id": redis_message_id(run.run_id),
            },
            "message_id": run.run_id,
            # message.py: int(time.time() * 1000) when the message is made; AgeLimit counts
            # from it.
            "message_timestamp": int(run.enqueued_at * 1000),
        }

    def writes(self, run: Run) -> Writes:
        message = self.message(run)
        data = json.dumps(message, separators=(",", ":"))
        message_key = message["options"]["redis_message_id"]
        return Writes(
            ops=(
                ("HSET", self._messages_key, message_key, data),
                ("RPUSH", self._queue_key, message_key),
            ),
            guard=None,
        )


def _split_args(args: Mapping[str, Any] | tuple[Any, ...]) -> tuple[list[Any], dict[str, Any]]:
    """A mapping is keyword arguments, a tuple positional ones (DESIGN "Where runs go")."""
    if isinstance(args, tuple):
        return list(args), {}
    return [], dict(args)
