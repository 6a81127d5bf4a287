"""Retry policy arithmetic: option durations, exponential backoff with full jitter. Pure."""

from __future__ import annotations

import re

from scheduler.core.durations import parse_duration_s

_MILLIS = re.compile(r"(\d+(?:\.\d+)?)ms")


def seconds(value: object, what: str) -> float:
    """A job option's duration: `1s`, `5m`, `1h30m`, `250ms`, or a number of seconds (decimals
    allowed: tests and fast jobs want sub-second backoffs). ValueError naming `what`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{what}: {value} is negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        millis = _MILLIS.fullmatch(text)
        if millis:
            return float(millis.group(1)) / 1000
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if number >= 0:
                return number
    try:
        return float(parse_duration_s(value))
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None


def backoff_bound_s(failed_attempt: int, base_s: float, cap_s: float) -> float:
    """The longest wait after the `failed_attempt`-th attempt (1-based) failed: base, doubled
    per attempt, capped."""
    # min() before the power would overflow: 2**1100 is not a float.
    exponent = min(failed_attempt - 1, 64)
    return min(cap_s, base_s * 2.0**exponent)


def retry_delay_s(failed_attempt: int, base_s: float, cap_s: float, uniform: float) -> float:
    """Full jitter (uniformly anywhere from 0 to the bound), so the retries of runs that failed
    together (a database down) spread out instead of coming back as one wave. `uniform` is a
    draw from [0, 1), given so that this stays a function of its inputs."""
    return backoff_bound_s(failed_attempt, base_s, cap_s) * uniform
