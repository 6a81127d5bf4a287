"""Logging set-up: text for people, `--log-format json` for machines (one object per line).

Context travels as `extra=`: schedule, run_id, token, replica. The JSON form carries each of them
as a field where it applies; the text form appends them as `key=value`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

CONTEXT_FIELDS = ("schedule", "run_id", "token", "replica", "event")


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {k: getattr(record, k) for k in CONTEXT_FIELDS if getattr(record, k, None) is not None}


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _context(record).items())
        return f"{text} {extra}" if extra else text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(fmt: str, level: str, replica: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if replica is not None:
        handler.addFilter(_ReplicaFilter(replica))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The relay's clients log every connect at INFO and every failed attempt with a traceback;
    # the relay says what failed itself, once per episode, with the password redacted.
    # With --log-level debug they speak too.
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.CRITICAL
    for chatty in ("pika", "nats", "psycopg"):
        logging.getLogger(chatty).setLevel(quiet)


class _ReplicaFilter(logging.Filter):
    def __init__(self, replica: str) -> None:
        super().__init__()
        self._replica = replica

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "replica", None) is None:
            record.replica = self._replica
        return True
