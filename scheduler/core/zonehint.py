"""What to suggest for a time zone name that is not one: `CEST` -> `Europe/Berlin`, not `EST`.

People write the abbreviation they see on a clock. Most are no zone at all in the IANA database,
and the nearest spelling of one is usually a different place (`CEST` is one letter from `EST`,
New York's winter offset), so abbreviations are looked up here before any spelling is.
"""

from __future__ import annotations

import difflib
import zoneinfo

# Abbreviation (upper case) -> (what it stands for, zones to suggest). Only those that are not
# themselves IANA names: CET, EET, WET, MET, EST, MST and HST are (legacy ones) and load.
ABBREVIATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CEST": ("Central European Summer Time", ("Europe/Berlin", "Europe/Paris")),
    "MEZ": ("Central European Time", ("Europe/Berlin",)),
    "MESZ": ("Central European Summer Time", ("Europe/Berlin",)),
    "EEST": ("Eastern European Summer Time", ("Europe/Athens", "Europe/Helsinki")),
    "WEST": ("Western European Summer Time", ("Europe/Lisbon",)),
    "BST": ("British Summer Time", ("Europe/London",)),
    "IST": (
        "India, Irish or Israel Standard Time",
        ("Asia/Kolkata", "Europe/Dublin", "Asia/Jerusalem"),
    ),
    "MSK": ("Moscow Time", ("Europe/Moscow",)),
    "PST": ("Pacific Standard Time", ("America/Los_Angeles",)),
    "PDT": ("Pacific Daylight Time", ("America/Los_Angeles",)),
    "PT": ("Pacific Time", ("America/Los_Angeles",)),
    "MDT": ("Mountain Daylight Time", ("America/Denver",)),
    "MT": ("Mountain Time", ("America/Denver", "America/Phoenix")),
    "CST": ("Central Standard Time (or China Standard Time)", ("America/Chicago", "Asia/Shanghai")),
    "CDT": ("Central Daylight Time", ("America/Chicago",)),
    "CT": ("Central Time", ("America/Chicago",)),
    "EDT": ("Eastern Daylight Time", ("America/New_York",)),
    "ET": ("Eastern Time", ("America/New_York",)),
    "AKST": ("Alaska Standard Time", ("America/Anchorage",)),
    "AKDT": ("Alaska Daylight Time", ("America/Anchorage",)),
    "HDT": ("Hawaii-Aleutian Daylight Time", ("America/Adak",)),
    "AST": ("Atlantic Standard Time", ("America/Halifax", "America/Puerto_Rico")),
    "ADT": ("Atlantic Daylight Time", ("America/Halifax",)),
    "NST": ("Newfoundland Standard Time", ("America/St_Johns",)),
    "NDT": ("Newfoundland Daylight Time", ("America/St_Johns",)),
    "BRT": ("Brasília Time", ("America/Sao_Paulo",)),
    "ART": ("Argentina Time", ("America/Argentina/Buenos_Aires",)),
    "JST": ("Japan Standard Time", ("Asia/Tokyo",)),
    "KST": ("Korea Standard Time", ("Asia/Seoul",)),
    "HKT": ("Hong Kong Time", ("Asia/Hong_Kong",)),
    "SGT": ("Singapore Time", ("Asia/Singapore",)),
    "PHT": ("Philippine Time", ("Asia/Manila",)),
    "ICT": ("Indochina Time", ("Asia/Bangkok", "Asia/Ho_Chi_Minh")),
    "WIB": ("Western Indonesia Time", ("Asia/Jakarta",)),
    "PKT": ("Pakistan Standard Time", ("Asia/Karachi",)),
    "GST": ("Gulf Standard Time", ("Asia/Dubai",)),
    "AEST": ("Australian Eastern Standard Time", ("Australia/Sydney", "Australia/Brisbane")),
    "AEDT": ("Australian Eastern Daylight Time", ("Australia/Sydney",)),
    "ACST": ("Australian Central Standard Time", ("Australia/Adelaide", "Australia/Darwin")),
    "ACDT": ("Australian Central Daylight Time", ("Australia/Adelaide",)),
    "AWST": ("Australian Western Standard Time", ("Australia/Perth",)),
    "NZST": ("New Zealand Standard Time", ("Pacific/Auckland",)),
    "NZDT": ("New Zealand Daylight Time", ("Pacific/Auckland",)),
    "SAST": ("South Africa Standard Time", ("Africa/Johannesburg",)),
    "WAT": ("West Africa Time", ("Africa/Lagos",)),
    "CAT": ("Central Africa Time", ("Africa/Maputo",)),
    "EAT": ("East Africa Time", ("Africa/Nairobi",)),
}


def zone_hint(name: str) -> str:
    """A sentence saying what to write instead of `name`, which is no IANA time zone."""
    known = ABBREVIATIONS.get(name.strip().upper())
    if known is not None:
        meaning, suggested = known
        examples = ", ".join(repr(zone) for zone in suggested[:-1])
        examples = f"{examples} or {suggested[-1]!r}" if examples else repr(suggested[-1])
        return (
            f"{name.strip()} is an abbreviation ({meaning}), not a time zone; write the place's "
            f"IANA name, e.g. {examples} (a place's name also follows its summer-time changes)"
        )
    # Only on the error path: reading the zone list takes milliseconds.
    zones = {zone.lower(): zone for zone in zoneinfo.available_timezones()}
    exact = zones.get(name.strip().lower())
    if exact is not None:  # the names are case-sensitive (they are file names on Linux)
        return f"did you mean {exact!r}? (time zone names are case-sensitive)"
    close = difflib.get_close_matches(name, sorted(zones.values()), n=1)
    return f"did you mean {close[0]!r}?" if close else "use an IANA name such as Europe/Berlin"
