"""Relayed target -> its deliverer class, imported on first use (each needs its system's client,
an optional extra: `pip install 'cronlease[postgres]'`, `[rabbitmq]`, `[nats]`)."""

from __future__ import annotations

import importlib

from scheduler.core.queues import QueueSpec
from scheduler.core.relayqueues import relay_kind as core_relay_kind
from scheduler.targets.relay.base import Deliverer, TargetUnavailable
from scheduler.targets.relay.secrets import resolve_url

# target -> (module, class, the extra that brings its client)
DELIVERERS = {
    "postgres": ("scheduler.targets.relay.postgres", "PostgresDeliverer", "postgres"),
    "rabbitmq": ("scheduler.targets.relay.rabbitmq", "RabbitDeliverer", "rabbitmq"),
    "nats": ("scheduler.targets.relay.nats", "NatsDeliverer", "nats"),
    # Celery with an amqp:// broker URL.
    "celery-amqp": ("scheduler.targets.relay.celery_amqp", "CeleryAmqpDeliverer", "rabbitmq"),
    # Any in-Redis target with a url: of another Redis instance.
    "remote-redis": ("scheduler.targets.relay.remote_redis", "RemoteRedisDeliverer", ""),
}


def relay_kind(spec: QueueSpec) -> str:
    """Which deliverer a relayed queue needs. A Celery queue's broker is told by its URL's
    scheme, which may only be known once ${VAR} or url_file is resolved."""
    kind = core_relay_kind(spec.target, spec.options) or "remote-redis"
    if kind == "remote-redis" and spec.target == "celery":
        url = resolve_url(spec).lower()
        if url.startswith(("amqp://", "amqps://", "pyamqp://")):
            return "celery-amqp"
    return kind


def deliverer_for(spec: QueueSpec, catchup_window_s: int = 3600) -> Deliverer:
    module_name, class_name, extra = DELIVERERS[relay_kind(spec)]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        hint = f" (pip install 'cronlease[{extra}]')" if extra else ""
        raise TargetUnavailable(
            f"the {spec.target} client is not installed{hint}: {error}"
        ) from None
    cls = getattr(module, class_name)
    # NATS and another Redis dedup within a window: it must cover the catch-up window.
    if class_name in ("NatsDeliverer", "RemoteRedisDeliverer"):
        deliverer: Deliverer = cls(spec, catchup_window_s=catchup_window_s)
    else:
        deliverer = cls(spec)
    return deliverer
