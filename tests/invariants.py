"""The invariant checker: reads every run out of Redis and proves DESIGN "Invariants" on them.

    runs = read_runs(client)
    check_invariants(runs, timelines={"heartbeat": timeline}).assert_ok()

or, for every schedule of a config at once, `runs = prove(client, config)`.

What a report proves, over the runs it is given (manual runs are left out unless asked for):

- exactly once: each (schedule, fire_ts) appears at most once, across all queues;
- nothing lost: between a schedule's first and last delivered fire, every fire its timeline
  produces was delivered, and nothing else was (needs `expected_fires` or `timelines`);
- fenced: within each stream, fencing tokens never decrease in stream order;
- in order: within each stream, a schedule's fire times strictly increase (the cursor only moves
  forward, so an out-of-order run means one was swallowed or doubled);
- consistent: run_id is `<schedule>@<fire_time>` (plus `#manual-<x>` for manual runs), fire_time
  is fire_ts in RFC 3339 UTC, queue matches the stream, trigger is known.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from scheduler.core.schedule import Config
from scheduler.core.timefmt import rfc3339_utc
from scheduler.core.timeline import Timeline

TRIGGERS = frozenset({"scheduled", "catchup", "manual"})
MANUAL_MARK = "#manual-"
_PAGE = 1000


@dataclass(frozen=True)
class Run:
    """One stream entry, its fields parsed. `fields` keeps the raw strings, extras included."""

    stream: str
    entry_id: str
    run_id: str
    schedule: str
    job: str
    args: Any = field(hash=False, compare=False)
    queue: str
    fire_time: str
    fire_ts: int
    enqueued_at: str
    enqueued_ts: float
    trigger: str
    token: int
    replica: str
    fields: Mapping[str, str] = field(hash=False, compare=False, repr=False)

    @property
    def where(self) -> str:
        return f"{self.stream} {self.entry_id}"

    @property
    def is_manual(self) -> bool:
        return self.trigger == "manual" or MANUAL_MARK in self.run_id

    @property
    def lag_s(self) -> float:
        return self.enqueued_ts - self.fire_ts

    @classmethod
    def from_entry(cls, stream: str, entry_id: str, fields: Mapping[str, str]) -> Run:
        """Raises ValueError naming the entry when a field is missing or unparsable."""

        def get(name: str) -> str:
            try:
                return fields[name]
            except KeyError:
                raise ValueError(
                    f"{stream} {entry_id}: no field {name!r} in {dict(fields)}"
                ) from None

        try:
            return cls(
                stream=stream,
                entry_id=entry_id,
                run_id=get("run_id"),
                schedule=get("schedule"),
                job=get("job"),
                args=json.loads(get("args")),
                queue=get("queue"),
                fire_time=get("fire_time"),
                fire_ts=int(get("fire_ts")),
                enqueued_at=get("enqueued_at"),
                enqueued_ts=parse_rfc3339(get("enqueued_at")),
                trigger=get("trigger"),
                token=int(get("token")),
                replica=get("replica"),
                fields=dict(fields),
            )
        except ValueError as error:  # json.JSONDecodeError is a ValueError too
            if str(error).startswith(f"{stream} {entry_id}:"):
                raise
            raise ValueError(f"{stream} {entry_id}: {error}") from None


def parse_rfc3339(text: str) -> float:
    """`2026-11-22T02:00:00.004Z` -> Unix seconds (Python 3.10's fromisoformat lacks `Z`)."""
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    moment = datetime.fromisoformat(candidate)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.timestamp()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def read_runs(client: redis.Redis, namespace: str = "cronlease") -> list[Run]:
    """Every entry of every `{namespace}:queue:*` stream: streams by key, entries in stream order.

    Works with and without decode_responses.
    """
    prefix = f"{{{namespace}}}:queue:"
    keys = sorted(
        _text(key) for key in client.scan_iter(match=_glob_escape(prefix) + "*", _type="stream")
    )
    runs: list[Run] = []
    for key in keys:
        start = "-"
        while True:
            page: list[tuple[Any, Any]] = client.xrange(key, min=start, max="+", count=_PAGE) or []
            for raw_id, raw_fields in page:
                entry_id = _text(raw_id)
                fields = {_text(name): _text(value) for name, value in (raw_fields or {}).items()}
                runs.append(Run.from_entry(key, entry_id, fields))
            if len(page) < _PAGE:
                break
            start = "(" + _text(page[-1][0])
    return runs


@dataclass(frozen=True)
class Duplicate:
    schedule: str
    fire_ts: int
    where: tuple[str, ...]

    def __str__(self) -> str:
        places = ", ".join(self.where)
        times = len(self.where)
        return f"{self.schedule}@{rfc3339_utc(self.fire_ts)} enqueued {times} times: {places}"


@dataclass(frozen=True)
class Missing:
    schedule: str
    fire_ts: int

    def __str__(self) -> str:
        return f"{self.schedule}@{rfc3339_utc(self.fire_ts)} ({self.fire_ts}) never enqueued"


@dataclass(frozen=True)
class Unexpected:
    schedule: str
    fire_ts: int
    where: str

    def __str__(self) -> str:
        return (
            f"{self.schedule}@{rfc3339_utc(self.fire_ts)} ({self.fire_ts}) at {self.where} "
            "is not a fire time of its schedule"
        )


@dataclass(frozen=True)
class TokenRegression:
    where: str
    token: int
    previous_where: str
    previous_token: int

    def __str__(self) -> str:
        return (
            f"token {self.token} at {self.where} is below token {self.previous_token} "
            f"at {self.previous_where}"
        )


@dataclass(frozen=True)
class OutOfOrder:
    schedule: str
    where: str
    fire_ts: int
    previous_fire_ts: int

    def __str__(self) -> str:
        return (
            f"{self.schedule}: fire {rfc3339_utc(self.fire_ts)} at {self.where} comes after "
            f"fire {rfc3339_utc(self.previous_fire_ts)} in the same stream"
        )


@dataclass(frozen=True)
class Inconsistent:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class InvariantReport:
    runs_checked: int
    duplicates: list[Duplicate]
    missing: list[Missing]
    unexpected: list[Unexpected]
    token_regressions: list[TokenRegression]
    out_of_order: list[OutOfOrder]
    inconsistent: list[Inconsistent]

    @property
    def problems(self) -> list[object]:
        return [
            *self.duplicates,
            *self.missing,
            *self.unexpected,
            *self.token_regressions,
            *self.out_of_order,
            *self.inconsistent,
        ]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, limit: int = 20) -> str:
        if self.ok:
            return f"{self.runs_checked} runs, all invariants hold"
        sections: list[tuple[str, Sequence[object]]] = [
            ("duplicates (exactly once)", self.duplicates),
            ("missing fires (nothing lost)", self.missing),
            ("fires not on the timeline", self.unexpected),
            ("decreasing fencing tokens (fenced)", self.token_regressions),
            ("fires out of order", self.out_of_order),
            ("inconsistent fields", self.inconsistent),
        ]
        lines = [f"{self.runs_checked} runs, {len(self.problems)} problems"]
        for title, items in sections:
            if not items:
                continue
            lines.append(f"{title}: {len(items)}")
            lines.extend(f"  {item}" for item in items[:limit])
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more")
        return "\n".join(lines)

    def assert_ok(self) -> None:
        if not self.ok:
            raise AssertionError(self.summary())


def expected_between(
    runs: Sequence[Run], timelines: Mapping[str, Timeline], *, ignore_manual: bool = True
) -> dict[str, list[int]]:
    """Per schedule with a timeline: its fire times from its first to its last delivered fire."""
    delivered = _fires_by_schedule(_select(runs, ignore_manual))
    expected: dict[str, list[int]] = {}
    for schedule, fires in delivered.items():
        timeline = timelines.get(schedule)
        if timeline is None:
            continue
        first, last = min(fires), max(fires)
        between = [first]
        fire = timeline.next_after(first)
        while fire is not None and fire <= last:
            between.append(fire)
            fire = timeline.next_after(fire)
        expected[schedule] = between
    return expected


def missing_between(
    runs: Sequence[Run], timelines: Mapping[str, Timeline], *, ignore_manual: bool = True
) -> dict[str, list[int]]:
    """Per schedule: fires of its timeline between its first and last delivered fire that are
    not delivered (schedules without gaps are left out)."""
    delivered = _fires_by_schedule(_select(runs, ignore_manual))
    gaps: dict[str, list[int]] = {}
    for schedule, fires in expected_between(runs, timelines, ignore_manual=ignore_manual).items():
        missing = [fire for fire in fires if fire not in delivered[schedule]]
        if missing:
            gaps[schedule] = missing
    return gaps


def check_invariants(
    runs: Sequence[Run],
    expected_fires: Mapping[str, Sequence[int]] | None = None,
    ignore_manual: bool = True,
    *,
    timelines: Mapping[str, Timeline] | None = None,
) -> InvariantReport:
    """Check `runs` (as read_runs returns them, in stream order).

    `expected_fires` maps a schedule to its fire times; within the span of its delivered fires,
    each expected one must be delivered and each delivered one expected. `timelines` derives them
    instead (see expected_between). Schedules with neither are checked for everything but gaps.
    Manual runs sit outside the cron cursor, so with `ignore_manual=False` they are checked for
    tokens and field consistency only, never for duplicates, gaps or order.
    """
    selected = _select(runs, ignore_manual)
    scheduled = [run for run in selected if not run.is_manual]
    expected: dict[str, Sequence[int]] = dict(expected_fires or {})
    if timelines is not None:
        for schedule, fires in expected_between(scheduled, timelines).items():
            expected.setdefault(schedule, fires)
    return InvariantReport(
        runs_checked=len(selected),
        duplicates=_duplicates(scheduled),
        missing=_missing(scheduled, expected),
        unexpected=_unexpected(scheduled, expected),
        token_regressions=_token_regressions(selected),
        out_of_order=_out_of_order(scheduled),
        inconsistent=[problem for run in selected for problem in _inconsistencies(run)],
    )


def _select(runs: Sequence[Run], ignore_manual: bool) -> list[Run]:
    return [run for run in runs if not (ignore_manual and run.is_manual)]


def _fires_by_schedule(runs: Sequence[Run]) -> dict[str, set[int]]:
    fires: dict[str, set[int]] = defaultdict(set)
    for run in runs:
        if not run.is_manual:
            fires[run.schedule].add(run.fire_ts)
    return fires


def _duplicates(runs: Sequence[Run]) -> list[Duplicate]:
    places: dict[tuple[str, int], list[str]] = defaultdict(list)
    for run in runs:
        places[(run.schedule, run.fire_ts)].append(run.where)
    return [
        Duplicate(schedule, fire_ts, tuple(where))
        for (schedule, fire_ts), where in places.items()
        if len(where) > 1
    ]


def _missing(runs: Sequence[Run], expected: Mapping[str, Sequence[int]]) -> list[Missing]:
    delivered = _fires_by_schedule(runs)
    missing: list[Missing] = []
    for schedule, fires in sorted(delivered.items()):
        if schedule not in expected:
            continue
        first, last = min(fires), max(fires)
        missing.extend(
            Missing(schedule, fire)
            for fire in sorted(expected[schedule])
            if first <= fire <= last and fire not in fires
        )
    return missing


def _unexpected(runs: Sequence[Run], expected: Mapping[str, Sequence[int]]) -> list[Unexpected]:
    # Only inside the span the caller enumerated: outside it, we know nothing.
    spans = {
        name: (min(fires), max(fires), set(fires)) for name, fires in expected.items() if fires
    }
    unexpected: list[Unexpected] = []
    for run in runs:
        span = spans.get(run.schedule)
        if span is not None and span[0] <= run.fire_ts <= span[1] and run.fire_ts not in span[2]:
            unexpected.append(Unexpected(run.schedule, run.fire_ts, run.where))
    return unexpected


def _token_regressions(runs: Sequence[Run]) -> list[TokenRegression]:
    highest: dict[str, Run] = {}
    regressions: list[TokenRegression] = []
    for run in runs:
        top = highest.get(run.stream)
        if top is not None and run.token < top.token:
            regressions.append(TokenRegression(run.where, run.token, top.where, top.token))
        elif top is None or run.token > top.token:
            highest[run.stream] = run
    return regressions


def _out_of_order(runs: Sequence[Run]) -> list[OutOfOrder]:
    latest: dict[tuple[str, str], Run] = {}
    problems: list[OutOfOrder] = []
    for run in runs:
        key = (run.stream, run.schedule)
        previous = latest.get(key)
        # An equal fire time is a duplicate, reported as such.
        if previous is not None and run.fire_ts < previous.fire_ts:
            problems.append(OutOfOrder(run.schedule, run.where, run.fire_ts, previous.fire_ts))
        else:
            latest[key] = run
    return problems


def _inconsistencies(run: Run) -> list[Inconsistent]:
    problems: list[str] = []
    nominal = f"{run.schedule}@{run.fire_time}"
    if run.is_manual:
        head, mark, suffix = run.run_id.partition(MANUAL_MARK)
        if head != nominal or not mark or not suffix:
            problems.append(f"manual run_id {run.run_id!r} is not {nominal + MANUAL_MARK}<random>")
        if run.trigger != "manual":
            problems.append(f"run_id {run.run_id!r} marks a manual run, trigger is {run.trigger!r}")
    elif run.run_id != nominal:
        problems.append(f"run_id {run.run_id!r} is not {nominal!r}")
    if run.trigger not in TRIGGERS:
        problems.append(f"trigger {run.trigger!r} is none of {sorted(TRIGGERS)}")
    if run.fire_time != rfc3339_utc(run.fire_ts):
        problems.append(
            f"fire_time {run.fire_time!r} is not fire_ts {run.fire_ts} ({rfc3339_utc(run.fire_ts)})"
        )
    queue_of_stream = run.stream.partition(":queue:")[2]
    if run.queue != queue_of_stream:
        problems.append(f"queue {run.queue!r} but the entry is in stream {run.stream!r}")
    return [Inconsistent(run.where, message) for message in problems]


@dataclass(frozen=True)
class LagStats:
    """enqueued_at minus fire_time, in seconds."""

    count: int
    p50_s: float
    p99_s: float
    max_s: float


def lag_stats(runs: Sequence[Run], *, ignore_manual: bool = True) -> LagStats:
    """Nearest-rank percentiles of the enqueue lag; ValueError when there is no run to measure."""
    lags = sorted(run.lag_s for run in _select(runs, ignore_manual))
    if not lags:
        raise ValueError("no runs to measure lag on")

    def percentile(fraction: float) -> float:
        return lags[max(math.ceil(fraction * len(lags)) - 1, 0)]

    return LagStats(count=len(lags), p50_s=percentile(0.50), p99_s=percentile(0.99), max_s=lags[-1])


def prove(client: redis.Redis, config: Config, namespace: str = "cronlease") -> list[Run]:
    """Read every run and prove the invariants against every schedule of `config`."""
    runs = read_runs(client, namespace)
    timelines = {s.name: s.timeline for s in config.schedules}
    check_invariants(runs, timelines=timelines).assert_ok()
    return runs
