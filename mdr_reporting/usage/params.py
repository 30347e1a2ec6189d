"""The parameters of an MDR usage report, as the carrier's SDK sends them.

``client.reports.mdr_usage_reports.fetch_sync(aggregation_type=, start_date=,
end_date=, profiles=[...])`` sends a query (``profiles=a,b``); ``create(...)`` sends
the same fields as a JSON body (``profiles`` a comma-separated string).  Both are
read here into one :class:`UsageQuery`.

``start_date`` is inclusive; ``end_date`` is inclusive as the SDK documents it: a
date (``2026-11-30``) includes that whole UTC day, a date-time includes that instant.
Times without an offset are UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mdr_reporting.domain.errors import ErrorItem, InvalidInput
from mdr_reporting.domain.limits import PLAIN_CHAR
from mdr_reporting.domain.times import INSTANT_PATTERN, get_zone, parse_instant

__all__ = [
    "AGGREGATIONS",
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "UsageQuery",
    "create_schema",
    "fetch_parameters",
    "parse_create_body",
    "parse_fetch_params",
]

AGGREGATIONS = ("NO_AGGREGATION", "PROFILE", "TAGS")
MAX_DAYS = 366
"""Longest window of one usage report."""
DEFAULT_DAYS = 30
"""fetch_sync without dates: the 30 days up to now."""
_ITEM = f"[^,{PLAIN_CHAR[2:-1]}]"
PROFILES_PATTERN = f"^{_ITEM}+(,{_ITEM}+)*$"
_PROFILES_MAX = 8_192


@dataclass(frozen=True)
class UsageQuery:
    """A checked usage report: ``start <= created_at < end`` (UTC) of the latest versions;
    ``end_date`` is the inclusive end as given (shown back to the client)."""

    aggregation: str
    start: datetime
    end: datetime
    end_date: datetime
    profiles: tuple[str, ...] = ()


def _bad(name: str, detail: str, *, body: bool) -> ErrorItem:
    if body:
        return ErrorItem("invalid_parameter", "Invalid parameter", detail, pointer=f"/{name}")
    return ErrorItem("invalid_parameter", "Invalid parameter", detail, parameter=name)


def _instant(name: str, value: Any, errors: list[ErrorItem], body: bool) -> tuple[datetime, bool]:
    """(UTC instant, whether it was a bare date)."""
    if not isinstance(value, str):
        errors.append(_bad(name, f"{name} must be an ISO 8601 date or date-time", body=body))
        return datetime.min.replace(tzinfo=UTC), False
    try:
        return parse_instant(value, get_zone("UTC")), len(value.strip()) == 10
    except ValueError as exc:
        errors.append(_bad(name, f"{name}: {exc}", body=body))
        return datetime.min.replace(tzinfo=UTC), False


def _profiles(value: Any, errors: list[ErrorItem], body: bool) -> tuple[str, ...]:
    """Profile ids joined with commas (fetch_sync's list arrives joined so too)."""
    if not isinstance(value, str):
        errors.append(
            _bad("profiles", "profiles must be profile ids joined with commas", body=body)
        )
        return ()
    if len(value) > _PROFILES_MAX:
        errors.append(
            _bad("profiles", f"profiles may be at most {_PROFILES_MAX} characters", body=body)
        )
        return ()
    if not re.fullmatch(PROFILES_PATTERN, value):
        errors.append(
            _bad("profiles", "profiles must be non-empty profile ids joined with commas", body=body)
        )
        return ()
    return tuple(dict.fromkeys(value.split(",")))


def _build(values: Mapping[str, Any], now: datetime, *, body: bool) -> UsageQuery:
    errors: list[ErrorItem] = []
    aggregation = values.get("aggregation_type")
    if aggregation is None:
        errors.append(
            _bad(
                "aggregation_type",
                f"aggregation_type is required: one of {', '.join(AGGREGATIONS)}",
                body=body,
            )
        )
    elif aggregation not in AGGREGATIONS:
        errors.append(
            _bad(
                "aggregation_type",
                f"aggregation_type must be one of {', '.join(AGGREGATIONS)}",
                body=body,
            )
        )
    end_given = values.get("end_date")
    start_given = values.get("start_date")
    if body:
        for name, given in (("start_date", start_given), ("end_date", end_given)):
            if given is None:
                errors.append(_bad(name, f"{name} is required", body=body))
    before = len(errors)
    if end_given is not None:
        end_date, whole_day = _instant("end_date", end_given, errors, body)
        end = end_date + (timedelta(days=1) if whole_day else timedelta(microseconds=1))
    else:
        end_date = end = now
    if start_given is not None:
        start, _ = _instant("start_date", start_given, errors, body)
    elif len(errors) == before:
        start = end - timedelta(days=DEFAULT_DAYS)
    window_ok = len(errors) == before
    profiles: tuple[str, ...] = ()
    if values.get("profiles") is not None:
        profiles = _profiles(values["profiles"], errors, body)
    if window_ok:
        if end <= start:
            errors.append(_bad("end_date", "end_date must not be before start_date", body=body))
        elif end - start > timedelta(days=MAX_DAYS):
            errors.append(
                _bad("start_date", f"the window may span at most {MAX_DAYS} days", body=body)
            )
    if errors:
        raise InvalidInput.many(errors)
    assert isinstance(aggregation, str)
    return UsageQuery(aggregation, start, end, end_date, profiles)


_FETCH_NAMES = ("aggregation_type", "start_date", "end_date", "profiles")


def parse_fetch_params(params: list[tuple[str, str]], now: datetime) -> UsageQuery:
    """fetch_sync's query string; a repeated or unknown parameter is a 400."""
    errors: list[ErrorItem] = []
    values: dict[str, str] = {}
    for name, value in params:
        if name not in _FETCH_NAMES:
            errors.append(_bad(name, f"unknown parameter {name!r}", body=False))
        elif name in values:
            errors.append(_bad(name, f"{name} is given more than once", body=False))
        else:
            values[name] = value
    if errors:
        raise InvalidInput.many(errors)
    return _build(values, now, body=False)


def parse_create_body(raw: Any, now: datetime) -> UsageQuery:
    """create's JSON body (unknown fields are ignored, as on the other v2 surfaces)."""
    if not isinstance(raw, dict):
        raise InvalidInput("the body must be a JSON object", pointer="")
    return _build(raw, now, body=True)


def create_schema() -> dict[str, Any]:
    """create's JSON body for /openapi.json (unknown fields are ignored)."""
    instant = {"type": "string", "pattern": INSTANT_PATTERN}
    return {
        "type": "object",
        "title": "UsageCreateBody",
        "required": ["aggregation_type", "start_date", "end_date"],
        "properties": {
            "aggregation_type": {"type": "string", "enum": list(AGGREGATIONS)},
            "start_date": {**instant, "description": "Inclusive; UTC without an offset"},
            "end_date": {
                **instant,
                "description": "Inclusive: a date includes its whole UTC day; not before "
                f"start_date, at most {MAX_DAYS} days after it",
            },
            "profiles": {
                "anyOf": [
                    {"type": "string", "pattern": PROFILES_PATTERN, "maxLength": _PROFILES_MAX},
                    {"type": "null"},
                ],
                "description": "Only these messaging profiles (ids joined with commas)",
            },
        },
    }


def fetch_parameters() -> list[dict[str, Any]]:
    """fetch_sync's query parameters for /openapi.json."""
    instant = {"type": "string", "pattern": INSTANT_PATTERN}
    return [
        {
            "name": "aggregation_type",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "enum": list(AGGREGATIONS)},
            "description": "One result row per direction and currency (NO_AGGREGATION), "
            "also per profile (PROFILE) or per tag (TAGS)",
        },
        {
            "name": "start_date",
            "in": "query",
            "schema": instant,
            "description": f"Inclusive (UTC without an offset); default: {DEFAULT_DAYS} days "
            f"before end_date. The window may span at most {MAX_DAYS} days and must not "
            "end before it starts.",
        },
        {
            "name": "end_date",
            "in": "query",
            "schema": instant,
            "description": "Inclusive: a date includes its whole UTC day; default: now",
        },
        {
            "name": "profiles",
            "in": "query",
            "schema": {
                "type": "string",
                "pattern": PROFILES_PATTERN,
                "maxLength": _PROFILES_MAX,
            },
            "description": "Only these messaging profiles (ids joined with commas)",
        },
    ]
