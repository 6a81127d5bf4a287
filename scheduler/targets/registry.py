"""Target kind -> its encoder class. Imported on first use, so a stream-only daemon loads none."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from scheduler.core.queues import QueueSpec
from scheduler.store.keys import Keys
from scheduler.store.queuestats import TargetQueue
from scheduler.targets.encoding import Encoder

# kind -> (module, class): one module per job system in this package.
ENCODERS = {
    "celery": ("scheduler.targets.celery", "CeleryEncoder"),
    "rq": ("scheduler.targets.rq", "RqEncoder"),
    "sidekiq": ("scheduler.targets.sidekiq", "SidekiqEncoder"),
    "arq": ("scheduler.targets.arq", "ArqEncoder"),
    "dramatiq": ("scheduler.targets.dramatiq", "DramatiqEncoder"),
    "bullmq": ("scheduler.targets.bullmq", "BullmqEncoder"),
}


def encoder_for(spec: QueueSpec) -> Encoder:
    module, name = ENCODERS[spec.target]
    encoder: Encoder = getattr(importlib.import_module(module), name)(spec)
    return encoder


def target_queues(encoders: Mapping[str, Encoder]) -> dict[str, TargetQueue]:
    """queue -> where its target keeps the waiting runs (queue-length gauges, `status`)."""
    return {
        queue: TargetQueue(
            encoder.spec.db, [(length.key, length.kind) for length in encoder.lengths()]
        )
        for queue, encoder in encoders.items()
    }


def target_queues_of(
    queues: Mapping[str, QueueSpec], keys: Keys | None = None
) -> dict[str, TargetQueue]:
    """The same, from a config's `queues:` (for `status`, which runs no router); a relayed
    queue's runs wait in its outbox stream."""
    keys = keys or Keys()
    found = target_queues(
        {
            queue: encoder_for(spec)
            for queue, spec in queues.items()
            if spec.target != "stream" and not spec.relayed
        }
    )
    for queue, spec in queues.items():
        if spec.relayed:
            found[queue] = TargetQueue(None, [(keys.outbox(queue), "stream")])
    return found
