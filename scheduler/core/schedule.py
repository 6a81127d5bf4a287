"""The validated schedule model: Schedule, Config, and the ConfigError listing every Problem."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from scheduler.core.timeline import Timeline

if TYPE_CHECKING:
    from scheduler.core.queues import QueueSpec

CatchupPolicy = Literal["all", "latest", "skip"]
CATCHUP_POLICIES: tuple[CatchupPolicy, ...] = ("all", "latest", "skip")
DEFAULT_CATCHUP_WINDOW_S = 3600


@dataclass(frozen=True, slots=True)
class Schedule:
    """One schedule, validated and immutable. `args_json` is encoded once, at load.

    Slotted, as a config may hold 100,000: the loader shares what schedules have alike (one
    string per distinct value, one timeline per distinct trigger, one args object per distinct
    args), so what is each schedule's own is little more than these slots."""

    name: str
    kind: Literal["cron", "every", "at"]
    spec: str  # the trigger as written: a cron expression, a duration, an instant
    job: str
    args: Mapping[str, Any] | tuple[Any, ...]  # keyword arguments, or positional ones
    args_json: str
    queue: str
    timezone: ZoneInfo
    timeline: Timeline = field(compare=False, repr=False)
    enabled: bool = True
    catchup: CatchupPolicy = "all"
    catchup_window_s: int = DEFAULT_CATCHUP_WINDOW_S
    jitter_s: int = 0
    start_ts: int | None = None
    end_ts: int | None = None
    description: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Note:
    """Another place a problem points at, e.g. where the YAML block a syntax error broke began."""

    line: int
    message: str


@dataclass(frozen=True)
class Problem:
    line: int
    message: str
    notes: tuple[Note, ...] = ()


def located(source: str, line: int, message: str) -> str:
    """`FILE:LINE: message`, or `FILE: message` when there is no line (0)."""
    return f"{source}:{line}: {message}" if line else f"{source}: {message}"


@dataclass(frozen=True)
class Config:
    source: str
    schedules: tuple[Schedule, ...]
    digest: str  # sha256 of the file's bytes, short: identifies a config across replicas
    # Where runs go, per queue that is not a plain cronlease stream (core/queues.py).
    queues: Mapping[str, QueueSpec] = field(default_factory=dict)
    # Valid but probably not meant (a one-shot in the past): only when the loader was given
    # `now`, which the daemon does not give; never part of equality, as the text decides that.
    warnings: tuple[Problem, ...] = field(default=(), compare=False)

    def queue(self, name: str) -> QueueSpec:
        """Where a queue's runs go: its `queues:` entry, else a cronlease stream."""
        from scheduler.core.queues import stream_queue  # queues.py builds on this module

        spec = self.queues.get(name)
        return spec if spec is not None else stream_queue(name)

    def by_name(self) -> dict[str, Schedule]:
        return {s.name: s for s in self.schedules}

    def warning_lines(self) -> list[str]:
        return [located(self.source, w.line, f"warning: {w.message}") for w in self.warnings]


class ConfigError(Exception):
    """The file is invalid; `problems` holds every one found, in line order."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: p.line)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per problem, each followed by its notes (`FILE:LINE: note: ...`)."""
        lines: list[str] = []
        for problem in self.problems:
            lines.append(located(self.source, problem.line, problem.message))
            lines.extend(
                located(self.source, note.line, f"note: {note.message}") for note in problem.notes
            )
        return lines
