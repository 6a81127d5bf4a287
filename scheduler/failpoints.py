"""Named fault-injection points for black-box fault tests, off unless the environment asks.

`CRONLEASE_FAILPOINTS=before-enqueue=stop` makes the process SIGSTOP itself once at that point,
so a test can freeze a leader exactly between its lease check and its write, then SIGCONT it
after another replica has taken over and watch the write being fenced.
"""

from __future__ import annotations

import os
import signal

_ARMED: dict[str, str] = {}
for _item in os.environ.get("CRONLEASE_FAILPOINTS", "").split(","):
    if "=" in _item:
        _name, _action = _item.split("=", 1)
        _ARMED[_name.strip()] = _action.strip()


def hit(name: str) -> None:
    action = _ARMED.pop(name, None)  # each failpoint fires once
    if action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
