"""The leader's periodic one-line summary: what its writes did since the last line.

The metrics have every figure; the log line is for whoever reads the log instead: it shows that
the leader is alive and working without one line per run (at 10,000 runs a second that would be
the whole log). Counts arrive per batch, already aggregated (runmetrics.py), so the cost here is
a handful of additions per batch, never one per run.

- At most one line a minute (SUMMARY_EVERY_S), and only when something happened.
- With nothing happening, a line saying "idle" every IDLE_EVERY_S (10 minutes): a leader whose
  schedules fire hourly or daily would otherwise go silent for hours, and a silent log cannot
  tell a healthy idle leader from a hung one; ten minutes keeps an idle cluster to six lines an
  hour, and is shorter than any alerting window people set on "no log lines".
- When a term ends (demoted, fenced, stopped), the counts not yet shown are logged at once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping

log = logging.getLogger("scheduler.daemon")

SUMMARY_EVERY_S = 60.0
IDLE_EVERY_S = 600.0
# In this order on every line, zeros included, so the line is easy to read and to parse.
FIELDS = ("enqueued", "caught_up", "deduplicated", "misfired", "skipped", "fenced", "refused")


class Summary:
    def __init__(self, every_s: float = SUMMARY_EVERY_S, idle_every_s: float = IDLE_EVERY_S):
        self._every_s = every_s
        self._idle_every_s = idle_every_s
        self._counts: Counter[str] = Counter()
        self._token: int | None = None  # the term being summed up; None between terms
        self._since_mono = 0.0

    @property
    def active(self) -> bool:
        return self._token is not None

    def start(self, token: int, now_mono: float) -> None:
        """A new term: the first line comes a minute (or, idle, ten) after "leading"."""
        self._token = token
        self._since_mono = now_mono
        self._counts.clear()

    def add(self, counts: Mapping[str, int]) -> None:
        """One batch's counts, by FIELDS name (a zero or an unknown name is ignored)."""
        for name, count in counts.items():
            if count and name in FIELDS:
                self._counts[name] += count

    def poll(self, now_mono: float, next_fire_in_s: Callable[[], float | None]) -> str | None:
        """Log the line if one is due now; the line logged, or None."""
        if self._token is None:
            return None
        elapsed = now_mono - self._since_mono
        if self._counts and elapsed >= self._every_s:
            return self._emit(now_mono, self._counted(elapsed))
        if not self._counts and elapsed >= self._idle_every_s:
            ahead = next_fire_in_s()
            nxt = "no fire ahead" if ahead is None else f"next fire in {_span(max(0.0, ahead))}"
            return self._emit(now_mono, f"idle for {_span(elapsed)}, nothing was due ({nxt})")
        return None

    def end(self, now_mono: float, why: str) -> str | None:
        """The term is over: log what the last line did not show yet (if anything)."""
        line = None
        if self._token is not None and self._counts:
            elapsed = now_mono - self._since_mono
            line = self._emit(now_mono, f"{self._counted(elapsed)} ({why})")
        self._token = None
        self._counts.clear()
        return line

    def _counted(self, elapsed_s: float) -> str:
        figures = " ".join(f"{name}={self._counts[name]}" for name in FIELDS)
        return f"last {_span(elapsed_s)}: {figures}"

    def _emit(self, now_mono: float, text: str) -> str:
        line = f"leader summary, {text}"
        log.info("%s", line, extra={"token": self._token, "event": "summary"})
        self._since_mono = now_mono
        self._counts.clear()
        return line


def _span(seconds: float) -> str:
    """`42s`, `10m0s`, `2h13m`: whole units, coarse enough to read at a glance."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60}s"
    return f"{whole // 3600}h{whole % 3600 // 60}m"
