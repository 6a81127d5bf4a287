"""Reading a changed config off the main loop: 100,000 schedules take seconds of YAML, and the
loop keeps scheduling on the running config meanwhile, then takes the result on its next turn."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from scheduler.core.config import load_config
from scheduler.core.schedule import Config, ConfigError, Problem
from scheduler.ops.metrics import Metrics

log = logging.getLogger("scheduler.daemon")


class ConfigLoader:
    def __init__(self, metrics: Metrics, on_loaded: Callable[[], None]) -> None:
        self._metrics = metrics
        self._on_loaded = on_loaded  # wakes the main loop
        metrics.last_reload_success.set(1)  # the start-up load is the first successful one
        metrics.last_reload_time.set(time.time())
        self._thread: threading.Thread | None = None
        self._again = False
        self._lock = threading.Lock()
        self._result: Config | ConfigError | None = None

    def start(self, path: str) -> bool:
        """Begin reading `path`; False if a read is under way (it is read again after it)."""
        if self._thread is not None and self._thread.is_alive():
            self._again = True  # changed again while being read: what we read may be old
            return False
        self._metrics.last_reload_time.set(time.time())
        self._thread = threading.Thread(
            target=self._load, args=(path,), name="config-load", daemon=True
        )
        self._thread.start()
        return True

    def again(self) -> bool:
        """Whether the file changed during the last read (the caller starts another)."""
        again, self._again = self._again, False
        return again

    def take(self) -> Config | ConfigError | None:
        """The finished read's result (a Config, or the ConfigError), once; None if none."""
        with self._lock:
            result, self._result = self._result, None
        return result

    def report(self, error: ConfigError, running_digest: str) -> None:
        """An invalid new file: said loudly and counted; the running config stays."""
        log.error(
            "config reload FAILED; the running config (hash %s) stays in force:\n%s",
            running_digest,
            "\n".join(error.lines()),
            extra={"event": "reload_failed"},
        )

    def _load(self, path: str) -> None:
        result: Config | ConfigError
        try:
            result = load_config(path)
        except ConfigError as error:
            result = error
        except Exception as error:  # a bug in validation must not pass for a good config
            log.exception("config reload crashed")
            result = ConfigError(path, [Problem(0, f"internal error: {error}")])
        ok = not isinstance(result, ConfigError)
        self._metrics.reloads.labels("success" if ok else "failure").inc()
        self._metrics.last_reload_success.set(1 if ok else 0)
        with self._lock:
            self._result = result
        self._on_loaded()
