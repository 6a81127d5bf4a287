"""Named fault-injection points for black-box fault tests, off unless the environment asks.

`CRONLEASE_FAILPOINTS=before-enqueue=stop` makes the process SIGSTOP itself once at that point,
so a test can freeze a leader exactly between its lease check and its write, then SIGCONT it
after another replica has taken over and watch the write being fenced. `main-loop=hang@40`
wedges the main loop on its 40th turn (the HTTP thread keeps answering), for health probes.
`promote=redis-error` fails a takeover half-way, as a Redis that drops the connection would.
Actions: `stop` (SIGSTOP self), `hang` (block this thread for good), `redis-error` (raise a
redis ConnectionError); `@N` fires on the Nth hit.
"""

from __future__ import annotations

import os
import signal
import threading

import redis

_ARMED: dict[str, str] = {}
for _item in os.environ.get("CRONLEASE_FAILPOINTS", "").split(","):
    if "=" in _item:
        _name, _action = _item.split("=", 1)
        _ARMED[_name.strip()] = _action.strip()


_HITS: dict[str, int] = {}


def hit(name: str) -> None:
    armed = _ARMED.get(name)
    if armed is None:
        return
    action, _, nth = armed.partition("@")
    _HITS[name] = _HITS.get(name, 0) + 1
    if _HITS[name] < int(nth or 1):
        return
    del _ARMED[name]  # each failpoint fires once
    if action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "hang":
        threading.Event().wait()
    elif action == "redis-error":
        raise redis.ConnectionError(f"failpoint {name}: injected connection error")
