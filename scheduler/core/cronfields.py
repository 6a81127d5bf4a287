"""The cron field grammar: one field's text to the values it names (ranges, steps, names, H, L, #).

Vixie cron's grammar, plus what people bring from elsewhere: `?` (Quartz, a day field left
open), `L`, `LW`, `nW`, `w#n`, `wL` and `Lw` (Quartz), Jenkins' `H` hashed by the schedule's
name, `a/k` (meaning `a-MAX/k`) and ranges that wrap around the end of their cycle (`22-2`,
`FRI-MON`), both of which croniter accepted, so configs written for it keep loading.

Errors are `FieldError`s whose text completes "cron '...' is invalid: ".
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class FieldError(ValueError):
    """A field we cannot read; the message names the field and what is wrong with it."""


@dataclass(frozen=True)
class FieldKind:
    name: str
    low: int
    high: int  # for day of week 7, Sunday again, as in Vixie cron (`*/7`, `1-7/2`)
    names: tuple[str, ...] = ()  # names[i] is the value low + i
    # croniter's index of this field, which its H formula shifts the name's CRC by: kept as is,
    # so every hashed schedule keeps the minute it had before this parser replaced croniter's.
    hash_index: int = 0


SECOND = FieldKind("second", 0, 59, hash_index=5)
MINUTE = FieldKind("minute", 0, 59, hash_index=0)
HOUR = FieldKind("hour", 0, 23, hash_index=1)
DAY = FieldKind("day-of-month", 1, 31, hash_index=2)
MONTH = FieldKind("month", 1, 12, MONTH_NAMES, hash_index=3)
WEEKDAY = FieldKind("day-of-week", 0, 7, WEEKDAY_NAMES, hash_index=4)


@dataclass(frozen=True)
class DayOfMonth:
    """What a day-of-month field names, before a month gives it dates."""

    days: int  # bit d set for each plain day d (1..31)
    last: bool = False  # L: the month's last day
    last_weekday: bool = False  # LW: its last Monday-to-Friday
    nearest_weekday: tuple[int, ...] = ()  # nW: the weekday nearest to day n


@dataclass(frozen=True)
class DayOfWeek:
    """What a day-of-week field names (0 = Sunday; 7 is read as 0)."""

    weekdays: int  # bit w set for each plain weekday w
    nth: tuple[tuple[int, int], ...] = ()  # w#n: (w, n), n in 1..5
    last: tuple[int, ...] = ()  # wL or Lw: the month's last weekday w


# ASCII only: `\d` would take other scripts' digits, which cron does not know.
_STEP = re.compile(r"(.+)/(\d+)", re.ASCII)
_HASH = re.compile(r"h(?:\((\d+)-(\d+)\))?(?:/(\d+))?", re.ASCII)
_NEAREST = re.compile(r"(\d+)w|w(\d+)", re.ASCII)
_NTH = re.compile(r"(\w+)#(\d+)", re.ASCII)
_LAST_OF = re.compile(r"l(\w+)|(\w+)l", re.ASCII)


def is_unrestricted(text: str) -> bool:
    """Whether a field counts as `*` for Vixie cron's rules: its text starts with `*`."""
    return text.startswith("*") or text == "?"


def values(kind: FieldKind, text: str, hash_id: bytes | None) -> frozenset[int]:
    """The values a second, minute, hour or month field names."""
    found: set[int] = set()
    for item in _items(kind, text):
        found.update(_item_values(kind, item, hash_id))
    return frozenset(found)


def unhashed(kind: FieldKind, text: str, hash_id: bytes | None) -> str:
    """The field with each H item replaced by the plain one it stands for (`h/15` -> `7-59/15`),
    so that what it names can be memoised by text. Other items are left to `values`."""
    items = _items(kind, text)
    return ",".join(_unhash(kind, item, hash_id) if item[0] == "h" else item for item in items)


def day_of_month(text: str, hash_id: bytes | None) -> DayOfMonth:
    days: set[int] = set()
    last = last_weekday = False
    nearest: set[int] = set()
    for item in _items(DAY, text):
        if item == "l":
            last = True
        elif item == "lw":
            last_weekday = True
        elif match := _NEAREST.fullmatch(item):
            nearest.add(_number(DAY, match.group(1) or match.group(2), item))
        else:
            days.update(_item_values(DAY, item.replace("-l", "-31"), hash_id))
    return DayOfMonth(bits(days), last, last_weekday, tuple(sorted(nearest)))


def day_of_week(text: str, hash_id: bytes | None) -> DayOfWeek:
    weekdays: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for item in _items(WEEKDAY, text):
        if match := _NTH.fullmatch(item):
            n = int(match.group(2))
            if not 1 <= n <= 5:
                raise FieldError(f"day-of-week {item!r}: # takes 1 to 5 (the 1st to 5th)")
            nth.add((_weekday(match.group(1), item), n))
        elif "#" in item:
            raise FieldError(f"day-of-week {item!r}: write w#n, e.g. 1#2 for the second Monday")
        elif (match := _LAST_OF.fullmatch(item)) and _is_weekday(day := match[1] or match[2]):
            last.add(_weekday(day, item))
        else:
            weekdays.update(v % 7 for v in _item_values(WEEKDAY, item, hash_id))
    return DayOfWeek(bits(weekdays), tuple(sorted(nth)), tuple(sorted(last)))


def bits(values: set[int] | frozenset[int]) -> int:
    """A set of small numbers as a bit mask: bit v set for each v."""
    mask = 0
    for value in values:
        mask |= 1 << value
    return mask


def _items(kind: FieldKind, text: str) -> list[str]:
    lowered = text.lower()
    if lowered == "?":
        if kind not in (DAY, WEEKDAY):
            raise FieldError(f"{kind.name} {text!r}: ? is for the day fields only")
        return ["*"]
    items = lowered.split(",")
    if any(not item for item in items):
        raise FieldError(f"{kind.name} {text!r} has an empty item; write e.g. 1,5,10")
    return items


def _item_values(kind: FieldKind, item: str, hash_id: bytes | None) -> list[int]:
    if item.startswith("h"):
        item = _unhash(kind, item, hash_id)
    step = 1
    if match := _STEP.fullmatch(item):
        item, step = match.group(1), int(match.group(2))
        if step < 1:
            raise FieldError(f"{kind.name} step 0 is not allowed; use 1 or more")
        if item != "*" and "-" not in item:
            item = f"{item}-{kind.high}"  # `a/k` is `a-MAX/k`
    if item == "*":
        return list(range(kind.low, kind.high + 1, step))
    low_text, dash, high_text = item.partition("-")
    low = _number(kind, low_text, item)
    high = _number(kind, high_text, item) if dash else low
    if low <= high:
        return list(range(low, high + 1, step))
    # A range that wraps (`22-2`, `FRI-MON`) steps on through the end of the cycle; the day of
    # week's cycle is 0-6 (its 7 is Sunday again).
    top = 6 if kind is WEEKDAY else kind.high
    low, high = (low % 7, high % 7) if kind is WEEKDAY else (low, high)
    if low <= high:
        return list(range(low, high + 1, step))
    cycle = [*range(low, top + 1), *range(kind.low, high + 1)]
    return cycle[::step]


def _number(kind: FieldKind, text: str, item: str) -> int:
    if text in kind.names:
        return kind.low + kind.names.index(text)
    if not (text.isascii() and text.isdigit()):  # "²".isdigit() holds, int("²") fails
        known = f" or a name ({kind.names[0]}..{kind.names[-1]})" if kind.names else ""
        raise FieldError(f"{kind.name} {item!r}: {text!r} is not a number{known}")
    value = int(text)
    if not kind.low <= value <= kind.high:
        raise FieldError(
            f"{kind.name} {value} is out of range {kind.low}-{kind.high}"
            + (f" (in {item!r})" if item != text else "")
        )
    return value


def _is_weekday(text: str) -> bool:
    return text in WEEKDAY_NAMES or (text.isascii() and text.isdigit())


def _weekday(text: str, item: str) -> int:
    return _number(WEEKDAY, text, item) % 7


def _unhash(kind: FieldKind, item: str, hash_id: bytes | None) -> str:
    """Jenkins' `H`, `H(a-b)`, `H/k`, `H(a-b)/k` -> plain cron text, exactly as croniter 6-7
    computed it (a schedule's hashed minute is part of what its users rely on)."""
    match = _HASH.fullmatch(item)
    if match is None:
        raise FieldError(f"{kind.name} {item!r}: write H, H(a-b), H/k or H(a-b)/k")
    if hash_id is None:  # parse_cron always gives the name; a guard for direct callers
        raise FieldError(f"{kind.name} {item!r}: H needs the schedule's name")
    low, high = kind.low, (6 if kind is WEEKDAY else kind.high)
    if match.group(1) is not None:
        low, high = int(match.group(1)), int(match.group(2))
        if low >= high:
            raise FieldError(f"{kind.name} {item!r}: H(a-b) needs a below b")
        for bound in (low, high):
            _number(kind, str(bound), item)
    crc = binascii.crc32(hash_id) & 0xFFFFFFFF
    if match.group(3) is None:
        return str((crc >> kind.hash_index) % (high - low + 1) + low)
    step = int(match.group(3))
    if step < 1:
        raise FieldError(f"{kind.name} step 0 is not allowed; use 1 or more")
    first_high = min(low + step - 1, high)
    first = (crc >> kind.hash_index) % (first_high - low + 1) + low
    return str(first) if first == high else f"{first}-{high}/{step}"
