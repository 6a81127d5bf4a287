"""`cronlease worker`: import the job modules, reach Redis (the embedded one too), run the worker
loop with its metrics, stop cleanly on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

import prometheus_client
from prometheus_client import CollectorRegistry

from scheduler.cli.connect import connector_for
from scheduler.cli.dlq import cmd_dlq
from scheduler.cli.run import check_port, start_embedded, stop_embedded
from scheduler.cli.settings import Settings, resolve
from scheduler.cli.util import UsageError
from scheduler.cli.workerflags import WORKER_FLAGS
from scheduler.core.config import load_config
from scheduler.core.schedule import ConfigError
from scheduler.ops.httpserver import ProbeServer
from scheduler.ops.logs import setup_logging
from scheduler.store.connection import redact
from scheduler.store.embedded import embedded_url
from scheduler.store.keys import Keys
from scheduler.store.topology import TopologyError, check_keys
from scheduler.store.workqueue import WorkQueue
from scheduler.worker.engine import MAX_BLOCK_S, Worker, WorkerOptions
from scheduler.worker.jobs import JobImportError, Registry, import_jobs
from scheduler.worker.metrics import WorkerMetrics

log = logging.getLogger("scheduler.worker")

DEFAULT_TIMEOUT_S = 5.0
# Not `cronlease run`'s 9464: the single-machine mode runs both on one host.
WORKER_METRICS_PORT = 9465


def module_names(given: Sequence[str] | None, environ: Mapping[str, str]) -> list[str]:
    raw = list(given or []) or [environ.get("CRONLEASE_IMPORT", "")]
    names = [name.strip() for text in raw for name in text.replace(",", " ").split()]
    if not names:
        raise UsageError("give the modules that define the jobs: --import MODULE")
    return list(dict.fromkeys(names))


def worker_options(args: argparse.Namespace, consumer: str) -> WorkerOptions:
    """The worker's flags (and their variables) as options; UsageError with a sentence."""
    values = resolve(args, os.environ, WORKER_FLAGS)
    queues = [q.strip() for q in str(values["queues"]).split(",") if q.strip()]
    if not queues or len(set(queues)) != len(queues):
        raise UsageError(
            f"--queues {values['queues']!r}: give distinct queue names, commas between"
        )
    weights: dict[str, float] | None = None
    if values.get("weights"):
        weights = {}
        for pair in str(values["weights"]).split(","):
            name, equals, weight = pair.strip().partition("=")
            try:
                weights[name] = float(weight)
            except ValueError:
                weights[name] = -1.0
            if not equals or name not in queues or weights[name] <= 0:
                raise UsageError(
                    f"--weights: {pair.strip()!r} must be QUEUE=WEIGHT with a queue of --queues "
                    "and a weight above 0"
                )
    concurrency = int(str(values["concurrency"]))
    visibility_s = float(str(values["visibility_timeout"]))
    grace_s = float(str(values["grace"]))
    ttl_s = float(str(values["idempotency_ttl"]))
    if concurrency < 1:
        raise UsageError(f"--concurrency {concurrency}: at least 1")
    if visibility_s <= 0 or grace_s < 0 or ttl_s < 1:
        raise UsageError(
            "--visibility-timeout must be above 0, --grace 0 or more, --idempotency-ttl 1s or more"
        )
    return WorkerOptions(
        queues=tuple(queues),
        consumer=consumer,
        concurrency=concurrency,
        visibility_timeout_s=visibility_s,
        grace_s=grace_s,
        idempotency_ttl_s=round(ttl_s),
        weights=weights,
    )


def check_schedules(config_path: str, registry: Registry, queues: Sequence[str]) -> None:
    """Say at start-up which jobs of the schedules on our queues no imported module defines:
    their runs would go to the dead letters."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        log.warning("cannot check the job names of %s: %s", config_path, error.lines()[0])
        return
    missing = sorted(
        {
            (s.job, s.queue)
            for s in config.schedules
            if s.queue in queues and not registry.get(s.job)
        }
    )
    if missing:
        log.warning(
            "this worker cannot run %d job(s) of %s: %s; their runs go to the dead letters "
            "(reason unknown_job) unless another worker of their queue imports them",
            len(missing),
            config_path,
            ", ".join(f"{job} (queue {queue})" for job, queue in missing),
        )
    else:
        log.info("every job of %s on queues %s is registered", config_path, ", ".join(queues))


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging(settings.log_format, settings.log_level, replica=settings.replica_id)
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    port = settings.metrics_port
    if args.metrics_port is None and not os.environ.get("CRONLEASE_METRICS_PORT", "").strip():
        port = WORKER_METRICS_PORT
    check_port(port)
    options = worker_options(args, settings.replica_id)
    group = str(resolve(args, os.environ, WORKER_FLAGS)["group"])
    # `cronlease worker --import jobs` in a project folder imports that folder's jobs.py, as
    # `python -m` would; the console script alone does not put the folder on the path.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        registry = import_jobs(module_names(args.imports, os.environ))
    except JobImportError as error:
        raise UsageError(str(error)) from None
    if not registry.jobs:
        raise UsageError(f"no @job function in {', '.join(registry.modules)}")
    keys = Keys(settings.namespace)
    embedded = not settings.redis_url
    url = embedded_url(settings.config_path) if embedded else str(settings.redis_url)
    try:
        check_keys(keys, options.queues)
        connector = connector_for(url, settings)
    except TopologyError as error:
        raise UsageError(str(error)) from None
    registry_metrics = CollectorRegistry(auto_describe=True)
    metrics = WorkerMetrics(registry_metrics, options.queues, registry.names())
    # `cronlease-` names: the embedded server counts such connections as users still there.
    name = f"cronlease-worker-{settings.replica_id}"
    timeout_s = settings.redis_timeout_s or DEFAULT_TIMEOUT_S
    work = WorkQueue(connector(timeout_s, name), keys, group)
    reader = WorkQueue(connector(timeout_s + MAX_BLOCK_S, name), keys, group)
    worker = Worker(work, reader, registry, options, metrics)
    server = serve(settings, port, registry_metrics, worker)
    if embedded:  # after the port is bound: a taken port leaves no server behind
        start_embedded(settings)
    log.info(
        "cronlease worker %s: queues %s, concurrency %d, visibility timeout %gs, jobs %s; Redis %s",
        options.consumer,
        ", ".join(f"{q}={options.weights[q]:g}" for q in options.queues)
        if options.weights
        else " > ".join(options.queues),
        options.concurrency,
        options.visibility_timeout_s,
        ", ".join(registry.names()),
        redact(url),
    )
    check_schedules(settings.config_path, registry, options.queues)
    install_stop_handlers(worker)
    code = worker.run()
    if server is not None:
        server.stop()
    work.client.close()
    reader.client.close()
    if embedded:
        stop_embedded(url, name)
    return code


def serve(
    settings: Settings, port: int, registry: CollectorRegistry, worker: Worker
) -> ProbeServer | None:
    if not port:
        return None
    try:
        server = ProbeServer(settings.metrics_bind, port, registry, worker.health, worker.ready)
    except OSError as error:
        raise UsageError(
            f"cannot serve metrics on {settings.metrics_bind}:{port} ({error.strerror or error}); "
            "pick another --metrics-port, or 0 to turn it off"
        ) from None
    server.start()
    log.info("serving /metrics, /healthz, /readyz on %s:%d", settings.metrics_bind, server.port)
    return server


def install_stop_handlers(worker: Worker) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        del frame
        again = worker.stopping
        log.info(
            "received %s: %s",
            signal.Signals(signum).name,
            "stopping now, without waiting for running jobs"
            if again
            else "stopping: finishing running jobs (send it again to stop at once)",
        )
        worker.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


WORKER_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "worker": cmd_worker,
    "dlq": cmd_dlq,
}
