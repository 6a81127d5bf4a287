"""The validated schedule model: Schedule, Config, and the ConfigError listing every Problem."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from scheduler.core.timeline import Timeline

CatchupPolicy = Literal["all", "latest", "skip"]
CATCHUP_POLICIES: tuple[CatchupPolicy, ...] = ("all", "latest", "skip")
DEFAULT_CATCHUP_WINDOW_S = 3600


@dataclass(frozen=True)
class Schedule:
    """One schedule, validated and immutable. `args_json` is encoded once, at load."""

    name: str
    kind: Literal["cron", "every", "at"]
    spec: str  # the trigger as written: a cron expression, a duration, an instant
    job: str
    args: Mapping[str, Any]
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
class Config:
    source: str
    schedules: tuple[Schedule, ...]
    digest: str  # sha256 of the file's bytes, short: identifies a config across replicas

    def by_name(self) -> dict[str, Schedule]:
        return {s.name: s for s in self.schedules}


@dataclass(frozen=True)
class Problem:
    line: int
    message: str


class ConfigError(Exception):
    """The file is invalid; `problems` holds every one found, in line order."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: p.line)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [
            f"{self.source}:{p.line}: {p.message}" if p.line else f"{self.source}: {p.message}"
            for p in self.problems
        ]
