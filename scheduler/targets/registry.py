"""Target kind -> its encoder class. Imported on first use, so a stream-only daemon loads none."""

from __future__ import annotations

import importlib

from scheduler.core.queues import QueueSpec
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
