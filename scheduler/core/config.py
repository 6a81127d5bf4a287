"""schedules.yaml -> a frozen Config, or every problem at once as `FILE:LINE: message`.

Parsing is from text, so tests need no files. Nothing here touches a clock or Redis: warnings
about time (a one-shot already past) need `now`, which the caller passes in (`cronlease validate`
does; the daemon does not ask). Each schedule's own fields are checked in schedulecheck.py; this
module checks the document around them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from scheduler.core.bulk import collector_paused
from scheduler.core.queues import QueueSpec, parse_queues
from scheduler.core.schedule import Config, ConfigError, Note, Problem, Schedule
from scheduler.core.schedulecheck import FIELD_KEYS, TRIGGER_KEYS, ScheduleChecker, did_you_mean
from scheduler.core.yamlsource import LineMap, YamlDocument, load_yaml

TOP_KEYS = ("defaults", "schedules", "queues")


def parse_config(text: str, source: str = "schedules.yaml", now_ts: int | None = None) -> Config:
    """Validate `text`; return a Config or raise ConfigError holding every problem found.

    With `now_ts` (Unix seconds) the Config also carries warnings that depend on the date.
    """
    with collector_paused():  # millions of objects, no cycles (bulk.py)
        return _parse(text, source, now_ts)


def _parse(text: str, source: str, now_ts: int | None) -> Config:
    batch = _Schedules(now_ts)
    document = load_yaml(text, ("schedules", batch.entry))
    if batch.missed_defaults(document):  # `defaults:` after `schedules:`: load it whole
        batch = _Schedules(now_ts)
        document = load_yaml(text)
    elif not document.streamed:
        batch = _Schedules(now_ts)  # the full loader's value: what the sink saw does not count
    problems = [
        Problem(p.line, p.message, tuple(Note(line, note) for line, note in p.notes))
        for p in document.problems
    ]
    root = document.value
    if root is None and not problems:
        raise ConfigError(source, [Problem(1, "the file is empty; it needs a schedules: mapping")])
    if not isinstance(root, LineMap):
        if not problems:
            problems.append(
                Problem(
                    1,
                    "the file must be a mapping with a schedules: key (and optionally "
                    "defaults:), not a " + type(root).__name__,
                )
            )
        raise ConfigError(source, problems)

    for key in root:
        if key not in TOP_KEYS:
            problems.append(
                Problem(
                    root.key_lines[key],
                    f"unknown key {key!r}; " + did_you_mean(str(key), TOP_KEYS),
                )
            )
    defaults = root.get("defaults")
    if defaults is not None and not isinstance(defaults, LineMap):
        problems.append(Problem(root.key_lines["defaults"], "defaults must be a mapping"))
        defaults = None
    if isinstance(defaults, LineMap):
        for key in defaults:
            if key in TRIGGER_KEYS:
                problems.append(
                    Problem(
                        defaults.key_lines[key],
                        f"defaults cannot hold a trigger ({key}); give each schedule its own",
                    )
                )
            elif key not in FIELD_KEYS:
                problems.append(
                    Problem(
                        defaults.key_lines[key],
                        f"defaults: unknown key {key!r}; " + did_you_mean(str(key), FIELD_KEYS),
                    )
                )
        defaults = _usable(defaults)  # reported above; dropped, no problem echoes

    queues = parse_queues(root, problems)
    body = root.get("schedules")
    schedules: list[Schedule] = []
    warnings: list[Problem] = []
    if "schedules" not in root:
        problems.append(Problem(root.line, "missing schedules: mapping of name -> schedule"))
    elif body is None:
        pass  # `schedules:` with nothing under it: valid, runs nothing
    elif not isinstance(body, LineMap):
        problems.append(
            Problem(root.key_lines["schedules"], "schedules must be a mapping of name -> schedule")
        )
    else:
        if not batch.checked:  # not streamed: every entry is in `body`, checked now
            for name, value in body.items():
                batch.add(name, body.key_lines[name], value, defaults)
        schedules = batch.schedules
        problems.extend(batch.checker.problems)
        warnings.extend(batch.checker.warnings)
        problems.extend(_fits_its_queue(s, queues) for s in schedules if _misfits(s, queues))
    if problems:
        raise ConfigError(source, problems)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Config(
        source=source,
        schedules=tuple(schedules),
        digest=digest,
        queues=queues,
        warnings=tuple(sorted(warnings, key=lambda w: w.line)),
    )


def _usable(defaults: LineMap) -> LineMap:
    """The defaults a schedule merges: the known fields only (the others are reported)."""
    usable = LineMap((key, value) for key, value in defaults.items() if key in FIELD_KEYS)
    usable.line, usable.key_lines = defaults.line, defaults.key_lines
    return usable


_UNSEEN = LineMap()  # `_Schedules.defaults` before the first entry


class _Schedules:
    """Checks the entries of `schedules:`, as the YAML loader hands them over one by one
    (`entry`, its sink), or all at once after the load (`add`) when it could not stream.

    One by one needs the defaults first. They come first in most files; a file without any is
    checked as it streams too, and one whose `defaults:` comes after `schedules:` is loaded
    again, whole (`missed_defaults`): slower, never different."""

    def __init__(self, now_ts: int | None) -> None:
        self.checker = ScheduleChecker(now_ts)
        self.schedules: list[Schedule] = []
        self.checked = False  # whether `entry` checked the entries (none left in the body)
        self.defaults: LineMap | None = _UNSEEN
        self.defaults_seen = False  # whether the root had `defaults:` before the first entry

    def entry(self, root: LineMap, name: Any, line: int, value: Any) -> None:
        """The loader's sink: check the entry now; the body keeps only its name and line."""
        if self.defaults is _UNSEEN:
            found = root.get("defaults")
            self.defaults = _usable(found) if isinstance(found, LineMap) else None
            self.checked = True
            self.defaults_seen = "defaults" in root
        self.add(name, line, value, self.defaults)

    def missed_defaults(self, document: YamlDocument) -> bool:
        """Whether the entries were checked without the defaults the file has after them."""
        root = document.value
        return (
            document.streamed
            and self.checked
            and not self.defaults_seen
            and isinstance(root, LineMap)
            and "defaults" in root
        )

    def add(self, name: Any, line: int, value: Any, defaults: LineMap | None) -> None:
        checker = self.checker
        if not isinstance(name, str):  # `yes:` would silently become a schedule "True"
            checker.problem(
                line,
                f"schedule name {name!r} is a {type(name).__name__} to YAML, not text "
                "(unquoted yes, no, on, off, numbers and null are not names); put it in quotes",
            )
        if not isinstance(value, LineMap):
            checker.problem(line, f"schedule {name!r} must be a mapping with a job and a trigger")
            return
        schedule = checker.schedule(str(name), line, value, defaults)
        if schedule is not None:
            self.schedules.append(schedule)


# Targets with no positional arguments: a list of args has nowhere to go.
_NO_POSITIONAL = {"bullmq": "one data mapping"}


def _misfits(schedule: Schedule, queues: Mapping[str, QueueSpec]) -> bool:
    spec = queues.get(schedule.queue)
    return spec is not None and spec.target in _NO_POSITIONAL and isinstance(schedule.args, tuple)


def _fits_its_queue(schedule: Schedule, queues: Mapping[str, QueueSpec]) -> Problem:
    spec = queues[schedule.queue]
    return Problem(
        schedule.line,
        f"schedule {schedule.name!r}: args is a list, but queue {schedule.queue!r} goes to "
        f"{spec.target}, whose jobs take {_NO_POSITIONAL[spec.target]} (line {spec.line}); "
        "write args as a mapping",
    )


def load_config(path: str, now_ts: int | None = None) -> Config:
    """Read and validate a file; unreadable files are a ConfigError too, never a traceback."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError(path, [Problem(0, _not_found(path))]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, [Problem(0, f"cannot read the file: {error}")]) from None
    return parse_config(text, path, now_ts)


def _not_found(path: str) -> str:
    """Where exactly we looked: a relative path means little without the folder it started from."""
    looked_at = os.path.abspath(path)
    where = f"looked for {looked_at}"
    if not os.path.isabs(path):
        where += f" ({path} in the working directory {os.getcwd()})"
    folder = os.path.dirname(looked_at)
    if not os.path.isdir(folder):
        where += f"; the folder {folder} does not exist either"
    return f"file not found: {where}; pass --config PATH or set CRONLEASE_CONFIG"
