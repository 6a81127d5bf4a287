"""Commands that talk to Redis: run, status, trigger, pause, resume."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from scheduler.settings import Settings

REDIS_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {}
