"""The real Celery worker of tests/targets/test_celery.py.

    CELERY_BROKER_URL=redis://127.0.0.1:<port>/1 CRONLEASE_RECORD=/tmp/x \
        celery -A tasks worker -Q jobs -P solo -c 1

`record` appends one line per execution to $CRONLEASE_RECORD: the task id Celery gives it (the
run id) and the fire time cronlease sent as a header, both read from the task's own request.
$CRONLEASE_CELERY_KEYPREFIX sets kombu's global_keyprefix transport option.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

app = Celery("tasks", broker=os.environ["CELERY_BROKER_URL"])
app.conf.update(
    broker_transport_options={"global_keyprefix": os.environ.get("CRONLEASE_CELERY_KEYPREFIX", "")},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_ignore_result=True,
)


@app.task(bind=True, name="record")
def record(self: Any, *args: Any, **kwargs: Any) -> None:
    line = "\t".join(
        [
            self.request.id,
            self.request.cronlease_fire_time,
            repr(args),
            repr(kwargs),
            str(self.request.delivery_info.get("routing_key")),
        ]
    )
    # One write of a whole line in append mode: lines never interleave, even across processes.
    with open(os.environ["CRONLEASE_RECORD"], "a") as record_file:
        record_file.write(line + "\n")
