"""Jobs for the worker tests: each records what it does into a Redis list, with its run id,
attempt and process, so the tests see every execution (also those of killed workers)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any

import redis

from scheduler.worker import Run, job

EVENTS = "test:events"
_client: redis.Redis | None = None
_lock = threading.Lock()


def client() -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            _client = redis.Redis.from_url(os.environ["TEST_REDIS_URL"], decode_responses=True)
        return _client


def record(run: Run, event: str, **extra: Any) -> None:
    entry = {
        "run_id": run.run_id,
        "attempt": run.attempt,
        "job": run.job,
        "queue": run.queue,
        "pid": os.getpid(),
        "event": event,
        "t": time.time(),
        **extra,
    }
    client().rpush(EVENTS, json.dumps(entry))


@job("t.ok")
def ok(run: Run, **args: Any) -> None:
    record(run, "start", args=args)
    record(run, "end")


@job("t.positional")
def positional(a: int, b: int, run: Run) -> None:
    record(run, "end", total=a + b)


@job("t.flaky", retries=3, backoff_base=0.3, backoff_cap=0.5)
def flaky(run: Run, fails: int = 2) -> None:
    record(run, "start")
    if run.attempt <= fails:
        raise RuntimeError(f"attempt {run.attempt} fails on purpose")
    record(run, "end")


@job("t.always", retries=2, backoff_base="50ms", backoff_cap="100ms")
def always(run: Run) -> None:
    record(run, "start")
    raise RuntimeError("this job always fails")


@job("t.invalid", retries=5, give_up_on=(ValueError,))
def invalid(run: Run) -> None:
    record(run, "start")
    raise ValueError("bad input: retrying cannot help")


@job("t.wait")
def wait(run: Run, key: str) -> None:
    """Runs until the test sets `key` (or 30 s pass)."""
    record(run, "start")
    deadline = time.monotonic() + 30
    while not client().exists(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    record(run, "end")


@job("t.sleep")
def sleep(run: Run, seconds: float) -> None:
    record(run, "start")
    time.sleep(seconds)
    record(run, "end")


@job("t.timeout", retries=1, backoff_base="10ms", backoff_cap="10ms", timeout=0.3)
def too_slow(run: Run) -> None:
    record(run, "start")
    time.sleep(2)
    record(run, "end")


@job("t.record")
def chaos(run: Run, pause: float = 0.0, once: bool = False) -> None:
    """The body of the many-runs test: a short wait, then its one effect, recorded."""
    time.sleep(random.uniform(0, pause))
    if once:
        with run.once("record") as first:
            if first:
                record(run, "end")
    else:
        record(run, "end")
