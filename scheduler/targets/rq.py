"""RQ 2.x: a run as the job hash, queue list entry and queue-set member RQ's own enqueue writes.

Queue.enqueue_job (rq/queue.py, 2.12.0) does `SADD rq:queues rq:queue:<name>`, then
_enqueue_async_job saves the job hash `rq:job:<id>` (Job.to_dict, rq/job.py) and
push_job_id RPUSHes the id onto `rq:queue:<name>`; workers pop from the head, so the order is
FIFO. RQ's own unique enqueue (rq/scripts.py, `unique=True`) refuses a job whose hash exists:
that hash is the guard here too.

The job id is the run id, encoded by targets/runid.py: RQ accepts only `[A-Za-z0-9_-]`
(rq/job.py JOB_ID_PATTERN), and `:` would split into `<job id>:<execution id>` (parse_job_id).
The run's fields ride in the job's `meta` (serializer-encoded, as Job.to_dict writes it), read
inside the job with `get_current_job().meta`. `data` is the serializer's dump of
`(func_name, None, args, kwargs)`, zlib-compressed (Job.data, Job.to_dict); the serializer is
pickle (rq.serializers.DefaultSerializer) or JSON (rq.serializers.JSONSerializer), and the
worker must be started with the same one (`rq worker --serializer ...`).
"""

from __future__ import annotations

import json
import pickle
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from scheduler.core.queues import QueueSpec
from scheduler.targets.encoding import Length, Run, Writes
from scheduler.targets.runid import encode_run_id

# rq/queue.py Queue.redis_queue_namespace_prefix, redis_queues_keys; rq/job.py
# Job.redis_job_namespace_prefix.
QUEUE_PREFIX = "rq:queue:"
QUEUES_KEY = "rq:queues"
JOB_PREFIX = "rq:job:"

# rq/serializers.py DefaultSerializer: pickle.HIGHEST_PROTOCOL, which is 5 on every Python RQ
# 2.x runs on (>= 3.9). Pinned, so a newer Python here never writes what an older worker's
# pickle cannot read.
PICKLE_PROTOCOL = 5
# rq/utils.py _TIMESTAMP_FORMAT (utcformat).
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# rq/job.py Job.get_call_string: get_call_string(..., max_length=75).
DESCRIPTION_ARG_LENGTH = 75


def _pickle_dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=PICKLE_PROTOCOL)


def _json_dumps(value: Any) -> bytes:
    # rq.serializers.JSONSerializer.dumps: json.dumps(obj) with its defaults, UTF-8.
    return json.dumps(value).encode("utf-8")


SERIALIZERS: dict[str, Callable[[Any], bytes]] = {"pickle": _pickle_dumps, "json": _json_dumps}


def utcformat(unix_s: float) -> str:
    """rq/utils.py utcformat of a UTC instant: `2026-11-22T02:00:00.000123Z`."""
    return datetime.fromtimestamp(unix_s, timezone.utc).strftime(TIMESTAMP_FORMAT)


def call_string(func_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """rq/utils.py get_call_string: the job's `description`, `f(1, 'a', k=2)` (reprs cut at 75
    characters, keyword arguments sorted as text)."""

    def cut(text: str) -> str:
        if len(text) > DESCRIPTION_ARG_LENGTH:
            return text[:DESCRIPTION_ARG_LENGTH] + "..."
        return text

    parts = [cut(repr(arg)) for arg in args]
    parts += sorted(f"{key}={cut(repr(value))}" for key, value in kwargs.items())
    return f"{func_name}({', '.join(parts)})"


def rq_call(args: Mapping[str, Any] | tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The run's args as RQ's (args, kwargs): a mapping is keyword arguments, a tuple
    positional ones (Queue.create_job defaults the other to `()` / `{}`)."""
    if isinstance(args, tuple):
        return tuple(args), {}
    return (), dict(args)


class RqEncoder:
    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        options = spec.options
        self._dumps = SERIALIZERS[str(options.get("serializer", "pickle"))]
        # Queue.DEFAULT_TIMEOUT = 180 (rq/queue.py), set at enqueue when the job has none;
        # rq/defaults.py DEFAULT_RESULT_TTL 500 and DEFAULT_FAILURE_TTL one year, which the
        # worker applies when a job has none: writing the defaults changes nothing. Whole
        # seconds (queues.py parses durations so), as Job.restore reads the TTLs with int().
        self._timeout = int(options.get("timeout", 180))
        self._result_ttl = int(options.get("result_ttl", 500))
        self._failure_ttl = int(options.get("failure_ttl", 365 * 86400))
        self._queue_key = QUEUE_PREFIX + spec.name

    def job_id(self, run_id: str) -> str:
        return encode_run_id(run_id)

    def lengths(self) -> Sequence[Length]:
        # Waiting jobs are the queue list; a worker moves a job's id out of it when it starts.
        return (Length(self._queue_key, "list"),)

    def fields(self, run: Run) -> dict[str, str | bytes | int]:
        """The job hash, field by field, in Job.to_dict's order (rq/job.py)."""
        args, kwargs = rq_call(run.args)
        # Job.data: serializer.dumps((func_name, instance, args, kwargs)), instance None for a
        # function given by its dotted path; Job.to_dict compresses it.
        data = zlib.compress(self._dumps((run.job, None, args, kwargs)))
        stamp = utcformat(run.enqueued_at)
        return {
            "created_at": stamp,
            "data": data,
            # Written as '' when empty (Job.to_dict), so every version's restore finds them.
            "success_callback_name": "",
            "failure_callback_name": "",
            "stopped_callback_name": "",
            "started_at": "",
            "ended_at": "",
            "last_heartbeat": "",
            "worker_name": "",
            "group_id": "",
            "origin": self.spec.name,
            "description": call_string(run.job, args, kwargs),
            "enqueued_at": stamp,
            "timeout": self._timeout,
            "result_ttl": self._result_ttl,
            "failure_ttl": self._failure_ttl,
            # JobStatus.QUEUED, as Queue._prepare_for_queue sets it.
            "status": "queued",
            "meta": self._dumps(run.meta()),
        }

    def writes(self, run: Run) -> Writes:
        job_id = self.job_id(run.run_id)
        job_key = JOB_PREFIX + job_id
        hset: list[Any] = ["HSET", job_key]
        for field, value in self.fields(run).items():
            hset += (field, value)
        return Writes(
            ops=(
                ("SADD", QUEUES_KEY, self._queue_key),
                tuple(hset),
                ("RPUSH", self._queue_key, job_id),
            ),
            guard=job_key,
        )
