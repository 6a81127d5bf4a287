"""The worker settings the real arq worker runs for the cronlease arq target test.

    ARQ_REDIS_URL=redis://127.0.0.1:PORT/0 ARQ_QUEUE=jobs CRONLEASE_EXECUTED=/tmp/x.jsonl \
        arq arqjobs.WorkerSettings

Started with this folder as its working directory (the `arq` CLI imports from it), the
schedules' job is `record`. Each execution appends one JSON line: ctx['job_id'] (cronlease's
run id as it is, `<schedule>@<fire time>`), ctx['score'] (the fire time in ms on a first try),
the try and the arguments the job was called with.
"""

import json
import os

from arq.connections import RedisSettings


async def record(ctx, *args, **kwargs):
    line = json.dumps(
        {
            "id": ctx["job_id"],
            "score": ctx["score"],
            "job_try": ctx["job_try"],
            "enqueue_time": ctx["enqueue_time"].isoformat(),
            "args": list(args),
            "kwargs": kwargs,
        }
    )
    with open(os.environ["CRONLEASE_EXECUTED"], "a") as executed:
        executed.write(line + "\n")


class WorkerSettings:
    functions = (record,)
    redis_settings = RedisSettings.from_dsn(os.environ["ARQ_REDIS_URL"])
    queue_name = os.environ.get("ARQ_QUEUE", "arq:queue")
    poll_delay = 0.1
    # The test flushes its Redis between tests; the worker's health-check key goes with it.
    health_check_interval = 5
