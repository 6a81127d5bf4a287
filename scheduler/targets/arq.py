"""arq (0.26-0.28): a run as the job key and queue zset entry arq's own enqueue_job writes.

ArqRedis.enqueue_job (arq/connections.py; 0.26.0 and 0.28.0 differ only in type hints) checks
in a WATCHed MULTI that neither `arq:job:<id>` nor `arq:result:<id>` exists, then does
`PSETEX arq:job:<id> <expires ms> <payload>` and `ZADD <queue name> <score ms> <id>`. The worker
(arq/worker.py start_jobs) takes the zset members whose score is not in the future.

- The job id is the run id as it is: arq puts no rule on `_job_id`. Inside the job it is
  `ctx['job_id']`, and it ends in the fire time (`<schedule>@2026-11-22T02:00:00Z`).
- arq has no metadata channel beside the call (no headers, no meta), and adding keyword
  arguments would break a function that does not take them, so the run's other fields do not
  travel: the job reads its run id (and with it the fire time) from `ctx['job_id']`. The score
  is the fire time in ms (see `writes`), so `ctx['score']` holds it too, on the first try.
- The queue name (`spec.name`, by default the cronlease queue's name) IS arq's `queue_name`:
  the full key of the zset (`WorkerSettings.queue_name`; arq's default is `arq:queue`, so write
  `name: "arq:queue"` for a worker with default settings).
- The payload is arq's default serializer: `pickle.dumps({'t': job_try, 'f': function,
  'a': args, 'k': kwargs, 'et': enqueue ms})` (arq/jobs.py serialize_job), `t` None as
  enqueue_job leaves `_job_try` (the worker counts tries in `arq:retry:<id>`).

The guard is the job key, as in enqueue_job. enqueue_job also refuses while the result key
`arq:result:<id>` exists (the worker deletes the job key when the job finishes and keeps the
result `keep_result`, 3600 s by default): a guard of one key cannot say that, so once a job has
finished only the cursor keeps its run from being written again.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.core.queues import QueueSpec
from scheduler.targets.encoding import Length, Run, Writes

# arq/constants.py job_key_prefix.
JOB_PREFIX = "arq:job:"
# arq/jobs.py serialize_job calls pickle.dumps with no protocol: DEFAULT_PROTOCOL, 4 on
# Python 3.8-3.13. Pinned, so a newer Python here never writes what a worker cannot read.
PICKLE_PROTOCOL = 4


def arq_call(args: Mapping[str, Any] | tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The run's args as arq's (args, kwargs): a mapping is keyword arguments, a tuple
    positional ones (enqueue_job's `*args` / `**kwargs`: a tuple and a dict)."""
    if isinstance(args, tuple):
        return tuple(args), {}
    return (), dict(args)


def payload(run: Run) -> dict[str, Any]:
    """The job definition before pickling, keys as arq/jobs.py serialize_job writes them."""
    args, kwargs = arq_call(run.args)
    return {
        "t": None,
        "f": run.job,
        "a": args,
        "k": kwargs,
        # arq/utils.py timestamp_ms: int(round(time() * 1000)), at the enqueue.
        "et": round(run.enqueued_at * 1000),
    }


class ArqEncoder:
    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        # enqueue_job: expires_ms = score - enqueue_time_ms + expires_extra_ms (a day,
        # arq/constants.py): a job key not picked up by then expires unrun ("job expired").
        self._expires_ms = int(spec.options.get("expires", 86400)) * 1000
        self._queue_key = spec.name

    def job_id(self, run_id: str) -> str:
        return run_id

    def lengths(self) -> Sequence[Length]:
        # The zset holds every job not finished yet (finish_job ZREMs it), as arq's own
        # health check counts queued jobs with ZCARD (arq/worker.py record_health).
        return (Length(self._queue_key, "zset"),)

    def writes(self, run: Run) -> Writes:
        job_key = JOB_PREFIX + run.run_id
        data = pickle.dumps(payload(run), protocol=PICKLE_PROTOCOL)
        # Score: when the job is due. enqueue_job scores `_defer_until` or the enqueue time,
        # and arq's cron (worker.py run_cron) defers to the cron's own time. The fire time is
        # never later than Redis's clock at the write (the enqueue script refuses early fires),
        # so the job is due at once whatever the worker host's clock says, and catch-up runs
        # are taken in fire-time order.
        score = run.fire_ts * 1000
        return Writes(
            ops=(
                ("PSETEX", job_key, self._expires_ms, data),
                ("ZADD", self._queue_key, score, run.run_id),
            ),
            guard=job_key,
        )
