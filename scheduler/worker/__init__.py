"""Running Python jobs from cronlease streams: `from scheduler.worker import job`.

    from scheduler.worker import job

    @job("reports.nightly", retries=5, backoff_base="1s", backoff_cap="1h", timeout="5m",
         give_up_on=(ValueError,))
    def nightly(format: str, run) -> None:
        ...

`cronlease worker --import MODULE` runs them (scheduler/worker/engine.py). This package imports
no Redis client, so a job module loads as fast without a worker.
"""

from scheduler.worker.jobs import GiveUp, job
from scheduler.worker.runs import Once, Run

__all__ = ["GiveUp", "Once", "Run", "job"]
