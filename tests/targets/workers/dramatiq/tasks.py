"""The real Dramatiq worker of tests/targets/test_dramatiq.py.

    DRAMATIQ_REDIS_URL=redis://127.0.0.1:<port>/0 CRONLEASE_RECORD=/tmp/x \
        dramatiq tasks --processes 1 --threads 1 --queues jobs

`record` appends one line per execution to $CRONLEASE_RECORD: the message_id Dramatiq gives it
(the run id) and the fire time cronlease put in the message options, both read from the current
message (the CurrentMessage middleware). $DRAMATIQ_NAMESPACE sets the broker's key namespace.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

broker = RedisBroker(
    url=os.environ["DRAMATIQ_REDIS_URL"],
    namespace=os.environ.get("DRAMATIQ_NAMESPACE", "dramatiq"),
)
broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=os.environ.get("CRONLEASE_QUEUE", "jobs"), max_retries=0)
def record(*args: Any, **kwargs: Any) -> None:
    message = CurrentMessage.get_current_message()
    assert message is not None
    line = "\t".join(
        [
            message.message_id,
            message.options["cronlease"]["fire_time"],
            repr(args),
            repr(kwargs),
            message.queue_name,
        ]
    )
    # One write of a whole line in append mode: lines never interleave, even across processes.
    with open(os.environ["CRONLEASE_RECORD"], "a") as record_file:
        record_file.write(line + "\n")
