"""Sidekiq 6.x and 7.x (8.x: millisecond timestamps): a run as the job Sidekiq's client pushes.

Sidekiq::Client#atomic_push (lib/sidekiq/client.rb, 6.4.1) does `SADD queues <name>` then
`LPUSH queue:<name> <json>`; the fetcher BRPOPs `queue:<name>` (lib/sidekiq/fetch.rb), so the
order is FIFO. The job hash is what JobUtil#normalize_item (lib/sidekiq/job_util.rb) makes of a
push: `retry` and `queue` (the class defaults, merged first), `class`, `args`, `jid`,
`created_at`, then `enqueued_at` from atomic_push. Extra top-level keys ride along untouched, so
the run's fields travel in a `cronlease` hash, read inside the job by a server middleware
(Sidekiq 6.4 hands the worker only its jid: processor.rb `worker.jid = job_hash["jid"]`).

The jid IS the run id: Sidekiq puts no rule on a jid. Sidekiq has no job key and no dedup of
its own, so there is no guard: the cursor alone makes a run exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.core.queues import QueueSpec
from scheduler.targets.encoding import Length, Run, Writes


class SidekiqEncoder:
    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        options = spec.options
        # redis-namespace (Sidekiq 6 only; 7.0 dropped it) prefixes every key with `<ns>:`.
        namespace = str(options.get("namespace", ""))
        prefix = f"{namespace}:" if namespace else ""
        self._queues_key = f"{prefix}queues"
        self._queue_key = f"{prefix}queue:{spec.name}"
        self._retry: bool | int = options.get("retry", True)
        # Sidekiq 8 (Changes.md 8.0.0): created_at/enqueued_at are integer epoch milliseconds;
        # 6 and 7 write float epoch seconds (client.rb `Time.now.to_f`).
        self._milliseconds = options.get("timestamps", "seconds") == "milliseconds"

    def job_id(self, run_id: str) -> str:
        return run_id

    def lengths(self) -> Sequence[Length]:
        return (Length(self._queue_key, "list"),)

    def payload(self, run: Run) -> dict[str, Any]:
        """The job hash, as Sidekiq's client would have pushed it (before JSON)."""
        stamp: float | int = (
            round(run.enqueued_at * 1000) if self._milliseconds else run.enqueued_at
        )
        return {
            "retry": self._retry,
            "queue": self.spec.name,
            "class": run.job,
            "args": sidekiq_args(run.args),
            "jid": run.run_id,
            "created_at": stamp,
            "enqueued_at": stamp,
            "cronlease": run.meta(),
        }

    def writes(self, run: Run) -> Writes:
        # Sidekiq.dump_json is JSON.generate: compact, UTF-8 as is.
        job = json.dumps(self.payload(run), separators=(",", ":"), ensure_ascii=False)
        return Writes(
            ops=(
                ("SADD", self._queues_key, self.spec.name),
                ("LPUSH", self._queue_key, job),
            ),
            guard=None,
        )


def sidekiq_args(args: Mapping[str, Any] | tuple[Any, ...]) -> list[Any]:
    """Sidekiq's `args` array: positional args as they are; a mapping (Sidekiq has no keyword
    arguments) is ONE hash argument, and no args at all (the empty mapping, the default) call
    `perform` with none, as sidekiq-cron's default `args: []` does."""
    if isinstance(args, tuple):
        return list(args)
    return [dict(args)] if args else []
