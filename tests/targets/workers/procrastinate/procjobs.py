"""The real Procrastinate worker of tests/relay/test_postgres*.py.

    PROCRASTINATE_DSN=postgresql://.../test?options=-csearch_path%3Dx CRONLEASE_RECORD=/tmp/x \
        procrastinate --app=procjobs.app worker --queues=jobs --concurrency=1

`record` appends one line per execution to $CRONLEASE_RECORD: the run id (the job's
queueing_lock, where cronlease puts it), Procrastinate's job id, the keyword arguments it was
called with (JSON) and the job's queue, all read from what the worker handed the task.
"""

from __future__ import annotations

import json
import os
from typing import Any

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ["PROCRASTINATE_DSN"])
)


@app.task(name="record", pass_context=True)
def record(context: procrastinate.JobContext, **kwargs: Any) -> None:
    job = context.job
    line = "\t".join(
        [str(job.queueing_lock), str(job.id), json.dumps(kwargs, sort_keys=True), job.queue]
    )
    # One write of a whole line in append mode: lines never interleave, even across processes.
    with open(os.environ["CRONLEASE_RECORD"], "a") as record_file:
        record_file.write(line + "\n")
