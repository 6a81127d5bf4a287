"""One schedule's merged YAML fields -> a Schedule, or every problem found in them."""

from __future__ import annotations

import difflib
import json
import re
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from scheduler.core.cronexpr import CronSyntaxError, parse_cron
from scheduler.core.durations import format_duration, parse_duration_s
from scheduler.core.schedule import (
    CATCHUP_POLICIES,
    DEFAULT_CATCHUP_WINDOW_S,
    CatchupPolicy,
    Problem,
    Schedule,
)
from scheduler.core.timefmt import parse_instant, rfc3339_utc
from scheduler.core.timeline import AtTimeline, CronTimeline, EveryTimeline, Timeline
from scheduler.core.yamlsource import LineMap
from scheduler.core.zonehint import zone_hint

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")
TRIGGER_KEYS = ("cron", "every", "at")
FIELD_KEYS = (
    "job",
    "args",
    "queue",
    "timezone",
    "enabled",
    "catchup",
    "catchup_window",
    "jitter",
    "start",
    "end",
    "description",
)


def did_you_mean(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}known keys: {', '.join(known)}"


class ScheduleChecker:
    """Collects problems while turning one schedule's merged fields into a Schedule.

    With `now_ts` it also collects warnings: what is valid but has most likely stopped meaning
    anything (a one-shot in the past). They need a clock, which this module must not read, and
    they must never fail a file: a config that was fine yesterday stays loadable today.
    """

    def __init__(self, now_ts: int | None = None) -> None:
        self.now_ts = now_ts
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        # Equal timelines are one object, so the leader plans them once (ticker.py).
        self._timelines: dict[tuple[object, ...], Timeline] = {}

    def _shared(self, key: tuple[object, ...], make: Callable[[], Timeline]) -> Timeline:
        timeline = self._timelines.get(key)
        if timeline is None:
            timeline = self._timelines[key] = make()
        return timeline

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(line, message))

    def schedule(
        self, name: str, line: int, body: LineMap, defaults: LineMap | None
    ) -> Schedule | None:
        count_before = len(self.problems)

        def where(key: str) -> int:
            if key in body.key_lines:
                return body.key_lines[key]
            if defaults is not None and key in defaults.key_lines:
                return defaults.key_lines[key]
            return line

        merged: dict[str, Any] = dict(defaults or {})
        merged.update(body)

        if not NAME_PATTERN.fullmatch(name):
            self.problem(
                line,
                f"schedule name {name!r} is not allowed; use 1 to 128 letters, digits, "
                "'_', '.' or '-'",
            )
        for key in body:
            if key not in TRIGGER_KEYS + FIELD_KEYS:
                self.problem(
                    where(key),
                    f"schedule {name!r}: unknown key {key!r}; "
                    + did_you_mean(str(key), TRIGGER_KEYS + FIELD_KEYS),
                )
        triggers = [k for k in TRIGGER_KEYS if k in body]
        if len(triggers) != 1:
            what = "none" if not triggers else " and ".join(triggers)
            self.problem(
                line,
                f"schedule {name!r} needs exactly one of cron, every or at; it has {what}",
            )

        zone = ZoneInfo("UTC")
        zone_name = merged.get("timezone", "UTC")
        if not isinstance(zone_name, str) or not zone_name:
            self.problem(where("timezone"), f"schedule {name!r}: timezone must be an IANA name")
        else:
            try:
                zone = ZoneInfo(zone_name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
                self.problem(
                    where("timezone"),
                    f"schedule {name!r}: unknown time zone {zone_name!r}; {zone_hint(zone_name)}",
                )

        job = merged.get("job")
        if not isinstance(job, str) or not job.strip():
            self.problem(
                where("job") if "job" in merged else line,
                f"schedule {name!r} needs a job: the name of what the worker runs, "
                "e.g. job: reports.nightly",
            )

        args = merged.get("args", {})
        args_json = "{}"
        if not isinstance(args, (dict, list)):
            self.problem(
                where("args"),
                f"schedule {name!r}: args must be a mapping (keyword arguments, e.g. {{a: 1}}) "
                "or a list (positional ones, e.g. [1, pdf])",
            )
        else:
            try:
                if any(not isinstance(k, str) for k in _all_keys(args)):
                    raise TypeError("keys must be strings")
                args_json = json.dumps(args, allow_nan=False, separators=(",", ":"))
            except (TypeError, ValueError) as error:
                self.problem(
                    where("args"),
                    f"schedule {name!r}: args must be JSON-serialisable ({error}); use strings, "
                    "numbers, booleans, null, lists and mappings with string keys",
                )

        queue = merged.get("queue", "default")
        if not isinstance(queue, str) or not NAME_PATTERN.fullmatch(queue):
            self.problem(
                where("queue"),
                f"schedule {name!r}: queue {queue!r} is not allowed; use 1 to 128 letters, "
                "digits, '_', '.' or '-'",
            )

        enabled = merged.get("enabled", True)
        if not isinstance(enabled, bool):
            self.problem(where("enabled"), f"schedule {name!r}: enabled must be true or false")

        catchup = merged.get("catchup", "all")
        if catchup not in CATCHUP_POLICIES:
            self.problem(
                where("catchup"),
                f"schedule {name!r}: catchup {catchup!r} is not one of all, latest, skip",
            )

        window_s = self._duration(name, "catchup_window", merged, where, DEFAULT_CATCHUP_WINDOW_S)
        jitter_s = self._duration(name, "jitter", merged, where, 0)
        start_ts = self._instant(name, "start", merged, where, zone)
        end_ts = self._instant(name, "end", merged, where, zone)
        if start_ts is not None and end_ts is not None and end_ts < start_ts:
            # An error, not a warning: it holds whatever the date, so the schedule could never
            # fire, and the daemon (which ignores warnings) would run it silently doing nothing.
            self.problem(
                where("end"),
                f"schedule {name!r}: end {rfc3339_utc(end_ts)} is before start "
                f"{rfc3339_utc(start_ts)}, so it could never fire; swap them or fix the dates",
            )
            end_ts = None  # reported; the window check below would only say it again

        description = merged.get("description")
        if description is not None and not isinstance(description, str):
            self.problem(where("description"), f"schedule {name!r}: description must be text")

        timeline: Timeline | None = None
        kind = triggers[0] if len(triggers) == 1 else "cron"
        raw = body.get(kind)
        spec_text = str(raw)
        if len(triggers) == 1:
            timeline = self._timeline(name, kind, raw, where(kind), zone, start_ts, end_ts)
        if timeline is not None and jitter_s:
            shortest = timeline.shortest_interval_s
            if shortest is not None and jitter_s >= shortest:
                self.problem(
                    where("jitter"),
                    f"schedule {name!r}: jitter {format_duration(jitter_s)} must be shorter than "
                    f"the schedule's shortest interval ({format_duration(shortest)}), or runs "
                    "could be enqueued out of order",
                )

        if timeline is not None and not _fires_within_bounds(timeline):
            self.problem(
                where("end") if end_ts is not None else where("start"),
                f"schedule {name!r} never fires: "
                + (
                    f"at {spec_text} is not "
                    if kind == "at"
                    else f"{kind} {spec_text!r} has no fire "
                )
                + _window_text(start_ts, end_ts)
                + "; widen the window or change the trigger",
            )

        if len(self.problems) > count_before or timeline is None:
            return None
        self._warn_if_over(name, kind, spec_text, timeline, where)
        return Schedule(
            name=name,
            kind=cast(Literal["cron", "every", "at"], kind),
            spec=spec_text,
            job=cast(str, job).strip(),
            args=_frozen_args(json.loads(args_json)),
            args_json=args_json,
            queue=cast(str, queue),
            timezone=zone,
            timeline=timeline,
            enabled=cast(bool, enabled),
            catchup=cast(CatchupPolicy, catchup),
            catchup_window_s=window_s,
            jitter_s=jitter_s,
            start_ts=start_ts,
            end_ts=end_ts,
            description=cast("str | None", description),
            line=line,
        )

    def _warn_if_over(
        self, name: str, kind: str, spec: str, timeline: Timeline, where: Callable[[str], int]
    ) -> None:
        """Warn when `now` is past every fire the schedule could still have."""
        now_ts = self.now_ts
        if now_ts is None:
            return
        now = rfc3339_utc(now_ts)
        if isinstance(timeline, AtTimeline) and timeline.at_ts < now_ts:
            # A schedule the cluster has not seen yet starts from now (DESIGN "Catch-up"), so a
            # one-shot in the past added today never runs; one seen before has already run.
            self.warnings.append(
                Problem(
                    where(kind),
                    f"schedule {name!r}: at {spec} is in the past (it is now {now}), so it will "
                    "not fire (again); move it ahead or remove the schedule",
                )
            )
        elif timeline.end_ts is not None and timeline.end_ts < now_ts:
            self.warnings.append(
                Problem(
                    where("end"),
                    f"schedule {name!r}: end {rfc3339_utc(timeline.end_ts)} is in the past (it "
                    f"is now {now}), so it will not fire again; move it ahead or remove the "
                    "schedule",
                )
            )

    def _duration(
        self, name: str, key: str, merged: dict[str, Any], where: Any, default: int
    ) -> int:
        if key not in merged:
            return default
        try:
            return parse_duration_s(merged[key])
        except ValueError as error:
            self.problem(where(key), f"schedule {name!r}: {key}: {error}")
            return default

    def _instant(
        self, name: str, key: str, merged: dict[str, Any], where: Any, zone: ZoneInfo
    ) -> int | None:
        if merged.get(key) is None:
            return None
        try:
            moment = _to_instant(merged[key], zone)
        except ValueError as error:
            self.problem(where(key), f"schedule {name!r}: {key}: {error}")
            return None
        return moment

    def _timeline(
        self,
        name: str,
        kind: str,
        raw: Any,
        line: int,
        zone: ZoneInfo,
        start_ts: int | None,
        end_ts: int | None,
    ) -> Timeline | None:
        if kind == "cron":
            if not isinstance(raw, str):
                self.problem(line, f"schedule {name!r}: cron must be a quoted string")
                return None
            try:
                spec = parse_cron(raw, name)
            except CronSyntaxError as error:
                self.problem(line, f"schedule {name!r}: {error}")
                return None
            key = ("cron", spec.key, zone.key, start_ts, end_ts)
            return self._shared(key, lambda: CronTimeline(spec, zone, start_ts, end_ts))
        if kind == "every":
            try:
                interval = parse_duration_s(raw)
            except ValueError as error:
                self.problem(line, f"schedule {name!r}: every: {error}")
                return None
            if interval < 1:
                self.problem(line, f"schedule {name!r}: every must be at least 1s")
                return None
            return self._shared(
                ("every", interval, start_ts, end_ts),
                lambda: EveryTimeline(interval, start_ts, end_ts),
            )
        try:
            at_ts = _to_instant(raw, zone)
        except ValueError as error:
            self.problem(line, f"schedule {name!r}: at: {error}")
            return None
        return AtTimeline(at_ts, start_ts, end_ts)


def _fires_within_bounds(timeline: Timeline) -> bool:
    """Whether a bounded timeline has any fire at all: pure arithmetic, whatever `now` is."""
    if timeline.start_ts is not None:
        return timeline.next_after(timeline.start_ts - 1) is not None
    if timeline.end_ts is not None:
        return timeline.prev_before(timeline.end_ts + 1) is not None
    return True


def _window_text(start_ts: int | None, end_ts: int | None) -> str:
    if start_ts is not None and end_ts is not None:
        return f"between start {rfc3339_utc(start_ts)} and end {rfc3339_utc(end_ts)}"
    if start_ts is not None:
        return f"after start {rfc3339_utc(start_ts)}"
    return f"before end {rfc3339_utc(end_ts or 0)}"


def _all_keys(value: Any) -> list[Any]:
    keys: list[Any] = []
    if isinstance(value, dict):
        for k, v in value.items():
            keys.append(k)
            keys.extend(_all_keys(v))
    elif isinstance(value, list):
        for item in value:
            keys.extend(_all_keys(item))
    return keys


def _frozen_args(args: Any) -> Mapping[str, Any] | tuple[Any, ...]:
    return tuple(args) if isinstance(args, list) else MappingProxyType(args)


def _to_instant(raw: Any, zone: ZoneInfo) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError(f"{raw!r} is not a date-time; write e.g. 2030-12-01T09:00:00+01:00")
    moment: datetime = parse_instant(str(raw), zone)
    if moment.microsecond:
        raise ValueError(f"{raw!r} has a fraction of a second; fire times are whole seconds")
    return int(moment.timestamp())
