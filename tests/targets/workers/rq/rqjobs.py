"""The job the real RQ worker runs for the cronlease RQ target test.

    CRONLEASE_EXECUTED=/tmp/executed.jsonl rq worker -u redis://127.0.0.1:PORT/0 jobs
    (add `--serializer rq.serializers.JSONSerializer` for a queue with `serializer: json`)

Started with this folder as its working directory (`rq worker` puts it on sys.path), the
schedules' job is `rqjobs.record`. Each execution appends one JSON line: the job id as RQ gives
it inside the job (cronlease's run id, encoded: scheduler/targets/runid.py), the fire time
from the job's meta, and the keyword arguments the job was called with.
"""

import json
import os

from rq import get_current_job


def record(*args, **kwargs):
    job = get_current_job()
    line = json.dumps(
        {
            "id": job.id,
            "fire_time": job.meta.get("fire_time"),
            "meta": job.meta,
            "args": list(args),
            "kwargs": kwargs,
        }
    )
    with open(os.environ["CRONLEASE_EXECUTED"], "a") as executed:
        executed.write(line + "\n")
