"""Instants as text: RFC 3339 out, ISO 8601 / Unix seconds in. All instants are aware."""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo


def rfc3339_utc(ts: int) -> str:
    """`1795312800` -> `2026-11-22T02:00:00Z`."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_utc_ms(ts: float) -> str:
    """A float instant with milliseconds, e.g. `2026-11-22T02:00:00.004Z`."""
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rfc3339_local(ts: int, zone: tzinfo) -> str:
    """The same instant as wall time in `zone`, with its offset: `2026-11-22T03:00:00+01:00`."""
    return datetime.fromtimestamp(ts, zone).isoformat()


def parse_instant(text: str, default_zone: tzinfo) -> datetime:
    """Parse an ISO 8601 date-time (or Unix seconds); a value without offset is in `default_zone`.

    Raises ValueError naming the accepted forms.
    """
    raw = text.strip()
    if raw.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(raw), timezone.utc)
    # Python 3.10's fromisoformat does not accept `Z` or a space-less `T` variant of everything.
    candidate = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date-time; write ISO 8601 such as 2030-12-01T09:00:00+01:00, "
            "2030-12-01 09:00 (in the schedule's time zone) or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_zone)
    return moment
