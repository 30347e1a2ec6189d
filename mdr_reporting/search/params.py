"""The query of ``GET /v2/detail_records`` as the carrier's SDK sends it, parsed and checked.

``client.detail_records.list(filter={...}, page_number=, page_size=, sort=[...])``
becomes ``filter[record_type]=messaging&filter[cli][starts_with]=%2B1312&page[size]=20
&sort=-created_at``: nested keys in brackets, lists joined with commas.  Every
parameter is listed once in :data:`PARAMETERS` (name, JSON Schema, description), which
is both what the parser accepts and what /openapi.json documents.  A bad one is a
400 whose ``source.parameter`` names it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from mdr_reporting.domain.enums import DIRECTIONS, STATUS_RECORD_TYPE
from mdr_reporting.domain.errors import ErrorItem, InvalidInput
from mdr_reporting.domain.filters import MATCHES
from mdr_reporting.domain.limits import MAX_TEXT_LENGTH, PLAIN_CHAR
from mdr_reporting.domain.query import NumberMatch, normalise_number
from mdr_reporting.domain.times import INSTANT_PATTERN, get_zone, parse_instant

__all__ = [
    "DATE_RANGES",
    "MAX_PAGE_NUMBER",
    "MAX_PAGE_SIZE",
    "PARAMETERS",
    "RecordSearch",
    "date_range",
    "parse_search",
]

MAX_PAGE_SIZE = 100
MAX_PAGE_NUMBER = 10_000
MAX_LAST_DAYS = 9999
DATE_RANGES = (
    "yesterday",
    "today",
    "tomorrow",
    "last_week",
    "this_week",
    "next_week",
    "last_month",
    "this_month",
    "next_month",
)
_LAST_DAYS = re.compile(r"^last_([1-9][0-9]{0,3})_days$")
_LAST_DAYS_PATTERN = "^last_[1-9][0-9]{0,3}_days$"
STATUSES = tuple(sorted(STATUS_RECORD_TYPE))
CARRIER_STATUSES = {
    "dlr_unconfirmed": "delivery_unconfirmed",
    "failed": "delivery_failed",
    "gw_reject": "sending_failed",
}
"""The carrier's spellings the status filter also takes (the records' ``status`` field)."""
_STATUS_WORDS = (*STATUSES, *CARRIER_STATUSES)
_ITEM = f"[^,{PLAIN_CHAR[2:-1]}]"  # a plain character that is not a comma
_LIST_PATTERN = f"^{_ITEM}+(,{_ITEM}+)*$"
_NUMBER = f"^([^+{PLAIN_CHAR[2:-1]}]|\\+{PLAIN_CHAR}){PLAIN_CHAR}*$"
_MAX_LIST_TEXT = 16_384


def _choices(words: Iterable[str]) -> str:
    return "^(" + "|".join(words) + ")(,(" + "|".join(words) + "))*$"


def _param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


PARAMETERS: list[dict[str, Any]] = [
    _param(
        "filter[record_type]",
        {"type": "string", "enum": ["messaging"]},
        "Required; only `messaging` (message detail records) is served",
        required=True,
    ),
    _param(
        "filter[date_range]",
        {
            "type": "string",
            "anyOf": [{"enum": list(DATE_RANGES)}, {"pattern": _LAST_DAYS_PATTERN}],
        },
        "A window of whole UTC days: "
        + ", ".join(DATE_RANGES)
        + ", or `last_N_days` (the N days ending with today). Weeks start on Monday.",
    ),
    *(
        _param(
            f"filter[created_at][{op}]",
            {"type": "string", "pattern": INSTANT_PATTERN},
            f"created_at {sign} this ISO 8601 time (UTC without an offset)",
        )
        for op, sign in (("gte", ">="), ("gt", ">"), ("lte", "<="), ("lt", "<"))
    ),
    _param(
        "filter[direction]",
        {"type": "string", "pattern": _choices(DIRECTIONS)},
        "inbound / outbound; several joined with commas",
    ),
    _param(
        "filter[status]",
        {"type": "string", "pattern": _choices(_STATUS_WORDS)},
        "Message status ("
        + ", ".join(STATUSES)
        + ", or the carrier's "
        + ", ".join(CARRIER_STATUSES)
        + "); several joined with commas",
    ),
    *(
        _param(
            f"filter[{number}][{match}]",
            {"type": "string", "pattern": _NUMBER, "maxLength": MAX_TEXT_LENGTH},
            f"{'Sender' if number == 'cli' else 'Recipient'} {match.replace('_', ' ')} this "
            "value: one leading + ignored on both sides, any letter case, every other "
            "character literal",
        )
        for number in ("cli", "cld")
        for match in MATCHES
    ),
    _param(
        "filter[profile_id]",
        {"type": "string", "pattern": _LIST_PATTERN, "maxLength": _MAX_LIST_TEXT},
        "Messaging profile id; several joined with commas",
    ),
    _param(
        "filter[tags]",
        {"type": "string", "pattern": _LIST_PATTERN, "maxLength": _MAX_LIST_TEXT},
        "Records carrying at least one of these tags (exact); several joined with commas",
    ),
    _param(
        "sort",
        {"type": "string", "enum": ["created_at", "-created_at"]},
        "Order by created_at: `-created_at` (newest first, the default) or `created_at`",
    ),
    _param(
        "page[number]",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_NUMBER, "default": 1},
        "Page to return",
    ),
    _param(
        "page[size]",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 20},
        f"Records per page, 1 to {MAX_PAGE_SIZE}",
    ),
]
_KNOWN = {p["name"] for p in PARAMETERS}


@dataclass(frozen=True)
class RecordSearch:
    """A checked search: ``start <= created_at < end`` (either side open when None),
    every other criterion on the latest version; empty tuples mean "any"."""

    start: datetime | None = None
    end: datetime | None = None
    directions: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    numbers: tuple[NumberMatch, ...] = ()
    descending: bool = True
    page_number: int = 1
    page_size: int = 20
    empty: bool = field(default=False)  # the window holds no instant at all

    @property
    def offset(self) -> int:
        return (self.page_number - 1) * self.page_size


def _bad(parameter: str, detail: str) -> ErrorItem:
    return ErrorItem("invalid_parameter", "Invalid parameter", detail, parameter=parameter)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def date_range(name: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC window a ``filter[date_range]`` value names at ``now``; ValueError if none."""
    today = now.astimezone(UTC).date()
    monday = today - timedelta(days=today.weekday())
    month = today.replace(day=1)

    def month_after(first: date) -> date:
        return (first + timedelta(days=32)).replace(day=1)

    match = _LAST_DAYS.match(name)
    if match:
        days = int(match.group(1))
        if days > MAX_LAST_DAYS:
            raise ValueError(f"last_N_days takes N from 1 to {MAX_LAST_DAYS}")
        return _midnight(today - timedelta(days=days - 1)), _midnight(today + timedelta(days=1))
    spans = {
        "yesterday": (today - timedelta(days=1), today),
        "today": (today, today + timedelta(days=1)),
        "tomorrow": (today + timedelta(days=1), today + timedelta(days=2)),
        "last_week": (monday - timedelta(days=7), monday),
        "this_week": (monday, monday + timedelta(days=7)),
        "next_week": (monday + timedelta(days=7), monday + timedelta(days=14)),
        "last_month": ((month - timedelta(days=1)).replace(day=1), month),
        "this_month": (month, month_after(month)),
        "next_month": (month_after(month), month_after(month_after(month))),
    }
    if name not in spans:
        raise ValueError(
            f"filter[date_range] must be one of {', '.join(DATE_RANGES)} or last_N_days"
        )
    first, last = spans[name]
    return _midnight(first), _midnight(last)


def _list(parameter: str, value: str, errors: list[ErrorItem]) -> tuple[str, ...]:
    items = value.split(",")
    if not value or any(not item for item in items):
        errors.append(_bad(parameter, f"{parameter} must be a comma-separated list of values"))
        return ()
    if len(value) > _MAX_LIST_TEXT:
        errors.append(_bad(parameter, f"{parameter} may be at most {_MAX_LIST_TEXT} characters"))
        return ()
    return tuple(dict.fromkeys(items))


def _choice(
    parameter: str, value: str, allowed: tuple[str, ...], errors: list[ErrorItem]
) -> tuple[str, ...]:
    items = _list(parameter, value, errors)
    unknown = [item for item in items if item not in allowed]
    if unknown:
        errors.append(_bad(parameter, f"{unknown[0]!r} is not one of {', '.join(allowed)}"))
        return ()
    return items


def _plain(value: str) -> bool:
    return not any(ord(c) < 32 or ord(c) == 127 for c in value)


def parse_search(params: Iterable[tuple[str, str]], now: datetime) -> RecordSearch:
    """A :class:`RecordSearch` from the query's (name, value) pairs, or InvalidInput naming
    every bad parameter.  A parameter given twice is an error (its meaning would be
    ambiguous), as is any name this endpoint does not take."""
    errors: list[ErrorItem] = []
    values: dict[str, str] = {}
    for name, value in params:
        if name not in _KNOWN:
            errors.append(_bad(name, f"unknown parameter {name!r} for messaging records"))
        elif name in values:
            errors.append(_bad(name, f"{name} is given more than once"))
        elif not _plain(value):
            errors.append(_bad(name, f"{name} holds a control character"))
        else:
            values[name] = value
    if errors:
        raise InvalidInput.many(errors)

    record_type = values.get("filter[record_type]")
    if record_type is None:
        errors.append(
            _bad("filter[record_type]", "filter[record_type] is required: only 'messaging'")
        )
    elif record_type != "messaging":
        errors.append(
            _bad(
                "filter[record_type]",
                f"record type {record_type[:64]!r} is not served here: only 'messaging' "
                "(message detail records) is",
            )
        )

    start: datetime | None = None
    end: datetime | None = None

    def narrow(low: datetime | None, high: datetime | None) -> None:
        nonlocal start, end
        if low is not None:
            start = low if start is None else max(start, low)
        if high is not None:
            end = high if end is None else min(end, high)

    if "filter[date_range]" in values:
        try:
            narrow(*date_range(values["filter[date_range]"], now))
        except ValueError as exc:
            errors.append(_bad("filter[date_range]", str(exc)))
    tick = timedelta(microseconds=1)
    for op in ("gte", "gt", "lte", "lt"):
        name = f"filter[created_at][{op}]"
        if name not in values:
            continue
        try:
            instant = parse_instant(values[name], get_zone("UTC"))
        except ValueError as exc:
            errors.append(_bad(name, f"{name}: {exc}"))
            continue
        if op == "gte":
            narrow(instant, None)
        elif op == "gt":
            narrow(instant + tick, None)
        elif op == "lte":
            narrow(None, instant + tick)
        else:
            narrow(None, instant)

    directions: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    if "filter[direction]" in values:
        directions = _choice("filter[direction]", values["filter[direction]"], DIRECTIONS, errors)
    if "filter[status]" in values:
        words = _choice("filter[status]", values["filter[status]"], _STATUS_WORDS, errors)
        statuses = tuple(dict.fromkeys(CARRIER_STATUSES.get(w, w) for w in words))
    if "filter[profile_id]" in values:
        profiles = _list("filter[profile_id]", values["filter[profile_id]"], errors)
    if "filter[tags]" in values:
        tags = _list("filter[tags]", values["filter[tags]"], errors)

    numbers: list[NumberMatch] = []
    for number in ("cli", "cld"):
        for match in MATCHES:
            name = f"filter[{number}][{match}]"
            if name not in values:
                continue
            value = values[name]
            if not value.removeprefix("+"):
                errors.append(_bad(name, f"{name} must hold a number or sender id"))
            elif len(value) > MAX_TEXT_LENGTH:
                errors.append(_bad(name, f"{name} may be at most {MAX_TEXT_LENGTH} characters"))
            else:
                numbers.append(NumberMatch(number, match, normalise_number(value)))  # type: ignore[arg-type]

    sort = values.get("sort", "-created_at")
    if sort not in ("created_at", "-created_at"):
        errors.append(_bad("sort", "sort must be created_at or -created_at"))
    page_number = _int("page[number]", values.get("page[number]", "1"), MAX_PAGE_NUMBER, errors)
    page_size = _int("page[size]", values.get("page[size]", "20"), MAX_PAGE_SIZE, errors)
    if errors:
        raise InvalidInput.many(errors)
    return RecordSearch(
        start=start,
        end=end,
        directions=directions,
        statuses=statuses,
        profiles=profiles,
        tags=tags,
        numbers=tuple(numbers),
        descending=sort == "-created_at",
        page_number=page_number,
        page_size=page_size,
        empty=start is not None and end is not None and start >= end,
    )


def _int(name: str, text: str, highest: int, errors: list[ErrorItem]) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text):
        errors.append(_bad(name, f"{name} must be a whole number from 1 to {highest}"))
        return 1
    value = int(text)
    if not 1 <= value <= highest:
        errors.append(_bad(name, f"{name} must be from 1 to {highest}"))
        return 1
    return value
