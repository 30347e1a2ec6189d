"""Time zones from the pinned ``tzdata`` package and ISO 8601 parsing (api.md section 5)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

__all__ = [
    "INSTANT_PATTERN",
    "RECORD_TIME_PATTERN",
    "UTC",
    "ZoneNotFound",
    "get_zone",
    "parse_instant",
    "to_iso",
    "utc_iso",
    "zone_names",
]

# Far enough from datetime's limits that converting to any zone cannot overflow.
MIN_YEAR, MAX_YEAR = 1970, 9000
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


class ZoneNotFound(ValueError):
    pass


@lru_cache(maxsize=1024)
def get_zone(name: str) -> ZoneInfo:
    """The zone called ``name`` as the pinned tzdata package defines it, never the host's files."""
    if not _ZONE_NAME.match(name) or len(name) > 64:
        raise ZoneNotFound(name)
    return _load(name)


def _load(name: str) -> ZoneInfo:
    node = resources.files("tzdata").joinpath("zoneinfo")
    for part in name.split("/"):
        node = node.joinpath(part)
    try:
        with node.open("rb") as handle:
            return ZoneInfo.from_file(handle, key=name)
    except (OSError, ValueError):
        raise ZoneNotFound(name) from None


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    """Read an ISO 8601 time; a naive one is local to ``zone`` (fold=0). Returns UTC.

    Raises ValueError with a reason for anything that is not ISO 8601.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be a non-empty ISO 8601 string")
    candidate = text.strip()
    if len(candidate) < 10 or not candidate[:4].isdigit():
        raise ValueError(f"{text!r} is not an ISO 8601 date-time")
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"{text!r} is outside the years {MIN_YEAR} to {MAX_YEAR}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone, fold=0)
    return parsed.astimezone(UTC)


def to_iso(instant: datetime, zone: ZoneInfo) -> str:
    """``instant`` written in ``zone`` the way ``datetime.isoformat()`` writes it."""
    return instant.astimezone(zone).isoformat()


def utc_iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()


def zone_names() -> list[str]:
    """Every name :func:`get_zone` accepts: the zone list of the pinned tzdata package."""
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return sorted(set(listed.split()))


# The times parse_instant accepts, in the regular-expression dialect of JSON Schema:
# a calendar date of the years MIN_YEAR to MAX_YEAR (leap days included), then
# optionally a time (hours, minutes, seconds, any fraction) and a UTC offset.
_YEAR = r"(19[7-9][0-9]|[2-8][0-9]{3}|9000)"
_LEAP_YEAR = (
    r"(19(7[26]|8[048]|9[26])|[2-8][0-9](0[48]|[2468][048]|[13579][26])|([2468][048]|[357][26])00)"
)
_MONTH_DAY = (
    r"((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    r"|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = rf"({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_OFFSET = r"(Z|[+-]([01][0-9]|2[0-3])(:[0-5][0-9])?)"


def _time(fraction: str) -> str:
    return rf"T([01][0-9]|2[0-3])(:[0-5][0-9](:[0-5][0-9](\.[0-9]{fraction})?)?)?"


INSTANT_PATTERN = rf"^{_DATE}({_time('+')}{_OFFSET}?)?$"
"""A string parse_instant reads; tests/unit check both agree on every year's leap day."""

RECORD_TIME_PATTERN = rf"^{_DATE}{_time('{1,6}')}{_OFFSET}$"
"""A record timestamp (api.md section 13): a date-time with an offset, to the microsecond."""
