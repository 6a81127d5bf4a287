"""Durations as users write them: `90s`, `15m`, `1h30m`, `2d`, or a number of seconds."""

from __future__ import annotations

import re

_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([dhms])")
_WHOLE = re.compile(r"(?:\d+[dhms])+")


def parse_duration_s(value: object) -> int:
    """Return whole seconds, or raise ValueError with a sentence a person understands."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 15m, 1h30m or 2d")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative; a duration is 0 or more seconds")
        return value
    if isinstance(value, float):
        if value.is_integer() and value >= 0:
            return int(value)
        raise ValueError(f"{value} is not a whole number of seconds; durations are whole seconds")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 15m, 1h30m or 2d")
    text = value.strip().lower()
    if text.isdigit():
        return int(text)
    if not text or not _WHOLE.fullmatch(text):
        raise ValueError(
            f"{value!r} is not a duration; write a number of seconds or units d, h, m, s "
            "in that order, e.g. 90s, 15m, 1h30m or 2d"
        )
    units = [unit for _, unit in _PART.findall(text)]
    if len(set(units)) != len(units) or units != sorted(units, key=list(_UNIT_S).index):
        raise ValueError(f"{value!r} repeats or reorders units; write them as d, h, m, s")
    return sum(int(n) * _UNIT_S[unit] for n, unit in _PART.findall(text))


def format_duration(seconds: int) -> str:
    """The shortest canonical spelling, e.g. 5400 -> `1h30m`."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_S.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
