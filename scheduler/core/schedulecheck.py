"""One schedule's merged YAML fields -> a Schedule, or every problem found in them."""

from __future__ import annotations

import difflib
import json
import re
import zoneinfo
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from scheduler.core.durations import format_duration
from scheduler.core.schedule import (
    CATCHUP_POLICIES,
    DEFAULT_CATCHUP_WINDOW_S,
    CatchupPolicy,
    Problem,
    Schedule,
)
from scheduler.core.timefmt import rfc3339_utc
from scheduler.core.timeline import AtTimeline, Timeline
from scheduler.core.triggers import Triggers, fires_within_bounds, to_instant, window_text
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
_KNOWN_KEYS = frozenset(TRIGGER_KEYS + FIELD_KEYS)
_UTC = ZoneInfo("UTC")
_NO_ARGS: Mapping[str, Any] = MappingProxyType({})  # the default args, one object for all
_Kind = Literal["cron", "every", "at"]


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
        self._triggers = Triggers(self.problem)
        # Memos for what 100,000 schedules repeat (only successes: a problem is found anew, so
        # its message and line are always its own): zones, and args objects by their JSON.
        self._zones: dict[str, ZoneInfo] = {}
        self._args: dict[str, Mapping[str, Any] | tuple[Any, ...]] = {}

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
            if key not in _KNOWN_KEYS:
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

        zone = _UTC
        zone_name = merged.get("timezone", "UTC")
        if not isinstance(zone_name, str) or not zone_name:
            self.problem(where("timezone"), f"schedule {name!r}: timezone must be an IANA name")
        elif (known_zone := self._zones.get(zone_name)) is not None:
            zone = known_zone
        else:
            try:
                zone = self._zones[zone_name] = ZoneInfo(zone_name)
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
        if "args" not in merged:
            pass  # the default: no keyword arguments, and the shared object below
        elif not isinstance(args, (dict, list)):
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
            timeline = self._triggers.timeline(name, kind, raw, where(kind), zone, start_ts, end_ts)
        if timeline is not None and jitter_s:
            shortest = timeline.shortest_interval_s
            if shortest is not None and jitter_s >= shortest:
                self.problem(
                    where("jitter"),
                    f"schedule {name!r}: jitter {format_duration(jitter_s)} must be shorter than "
                    f"the schedule's shortest interval ({format_duration(shortest)}), or runs "
                    "could be enqueued out of order",
                )

        if timeline is not None and not fires_within_bounds(timeline):
            self.problem(
                where("end") if end_ts is not None else where("start"),
                f"schedule {name!r} never fires: "
                + (
                    f"at {spec_text} is not "
                    if kind == "at"
                    else f"{kind} {spec_text!r} has no fire "
                )
                + window_text(start_ts, end_ts)
                + "; widen the window or change the trigger",
            )

        if len(self.problems) > count_before or timeline is None:
            return None
        self._warn_if_over(name, kind, spec_text, timeline, where)
        frozen = self._args.get(args_json) if "args" in merged else _NO_ARGS
        if frozen is None:
            frozen = self._args[args_json] = _frozen_args(json.loads(args_json))
        return Schedule(
            name=name,
            kind=cast(_Kind, kind),
            spec=spec_text,
            job=cast(str, job).strip(),
            args=frozen,
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
            return self._triggers.seconds(merged[key])
        except ValueError as error:
            self.problem(where(key), f"schedule {name!r}: {key}: {error}")
            return default

    def _instant(
        self, name: str, key: str, merged: dict[str, Any], where: Any, zone: ZoneInfo
    ) -> int | None:
        if merged.get(key) is None:
            return None
        try:
            moment = to_instant(merged[key], zone)
        except ValueError as error:
            self.problem(where(key), f"schedule {name!r}: {key}: {error}")
            return None
        return moment


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
