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

from scheduler.core.queues import QueueSpec, parse_queues
from scheduler.core.schedule import Config, ConfigError, Note, Problem, Schedule
from scheduler.core.schedulecheck import FIELD_KEYS, TRIGGER_KEYS, ScheduleChecker, did_you_mean
from scheduler.core.yamlsource import LineMap, load_yaml

TOP_KEYS = ("defaults", "schedules", "queues")


def parse_config(text: str, source: str = "schedules.yaml", now_ts: int | None = None) -> Config:
    """Validate `text`; return a Config or raise ConfigError holding every problem found.

    With `now_ts` (Unix seconds) the Config also carries warnings that depend on the date.
    """
    document = load_yaml(text)
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
        for key in [k for k in defaults if k not in FIELD_KEYS]:
            del defaults[key]  # reported above; dropping it keeps one problem from echoing

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
        checker = ScheduleChecker(now_ts)
        for name, value in body.items():
            line = body.key_lines[name]
            if not isinstance(name, str):  # `yes:` would silently become a schedule "True"
                checker.problem(
                    line,
                    f"schedule name {name!r} is a {type(name).__name__} to YAML, not text "
                    "(unquoted yes, no, on, off, numbers and null are not names); put it in quotes",
                )
            if not isinstance(value, LineMap):
                checker.problem(
                    line, f"schedule {name!r} must be a mapping with a job and a trigger"
                )
                continue
            schedule = checker.schedule(str(name), line, value, defaults)
            if schedule is not None:
                schedules.append(schedule)
        problems.extend(checker.problems)
        warnings.extend(checker.warnings)
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
