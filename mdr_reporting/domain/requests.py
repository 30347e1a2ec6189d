"""Report requests: validation of the v1 and v2 bodies (api.md sections 2, 4, 9, 11).

Both surfaces parse into one :class:`ReportRequest`; what is stored and shown is
always the normalised, effective form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any
from urllib.parse import urlparse

from mdr_reporting.domain.enums import FORMATS, Direction, RecordType, RequestStatus
from mdr_reporting.domain.errors import ErrorItem, InvalidInput
from mdr_reporting.domain.filters import Filter, parse_filters
from mdr_reporting.domain.limits import (
    MAX_BODY_DEPTH,
    MAX_ID_LENGTH,
    MAX_LIST_ITEMS,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
    TEXT_PATTERN,
)
from mdr_reporting.domain.times import UTC, ZoneNotFound, get_zone, parse_instant

__all__ = [
    "JSON_INT_RANGE",
    "RECENT_DATA_WARNING",
    "RECENT_WINDOW",
    "ReportRequest",
    "RequestState",
    "estimate_completion",
    "parse_v1",
    "parse_v2",
    "warnings_for",
]

MAX_ERRORS = 100  # problems listed in one 400
RECENT_WINDOW = timedelta(hours=4)
RECENT_DATA_WARNING = (
    "end_time is within the last 4 hours: recent messages may still change status "
    "as delivery receipts arrive"
)

V1_FIELDS = frozenset(
    {
        "start_time",
        "end_time",
        "timezone",
        "call_types",
        "directions",
        "record_types",
        "connections",
        "profiles",
        "report_name",
        "filters",
        "include_message_body",
        "format",
        "webhook_url",
        "managed_accounts",
        "select_all_managed_accounts",
    }
)


@dataclass(frozen=True)
class ReportRequest:
    """A validated request, as both surfaces show it."""

    start_time: datetime  # UTC, inclusive
    end_time: datetime  # UTC, exclusive
    timezone: str
    directions: tuple[Direction, ...]  # effective, never empty
    record_types: tuple[RecordType, ...]
    connections: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    report_name: str = ""
    filters: tuple[Filter, ...] = ()
    include_message_body: bool = False
    format: str = "csv"
    webhook_url: str | None = None
    managed_accounts: tuple[str, ...] = ()
    select_all_managed_accounts: bool = False

    def filters_json(self) -> str:
        return json.dumps([f.to_json() for f in self.filters], separators=(",", ":"))


@dataclass(frozen=True)
class RequestState:
    """A stored request: the spec plus its lifecycle (the row of the catalog)."""

    id: str
    account_id: str
    accounts: tuple[str, ...]  # every account whose records the report covers
    spec: ReportRequest
    status: RequestStatus
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    record_count: int | None = None
    size_bytes: int | None = None
    progress: float = 0.0
    error: str | None = None
    warnings: tuple[str, ...] = ()
    attempts: int = 0
    file_key: str | None = None
    engine: str | None = None  # the engine that built the report (MDR_ENGINE=auto chooses)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    surface: str = "v1"  # the surface that created it: its webhooks carry that view
    started_at: datetime | None = None  # when its current (or last) build began
    lease_until: datetime | None = None  # while a worker holds it: when that lease ends
    # Derived for responses while Pending (see with_wait), never stored:
    queue_position: int | None = None  # requests ahead of it in the claim order
    estimated_completion_at: datetime | None = None

    def as_of(self, now: datetime) -> RequestState:
        """The state every reader sees at ``now``: a Complete report past ``expires_at`` is
        Expired (no file, no link) at once, whether or not the sweeper has run yet."""
        if (
            self.status is RequestStatus.COMPLETE
            and self.expires_at is not None
            and self.expires_at <= now
        ):
            return replace(
                self,
                status=RequestStatus.EXPIRED,
                file_key=None,
                updated_at=max(self.updated_at, self.expires_at),
            )
        return self

    def building(self, now: datetime) -> bool:
        """Pending and held by a worker whose lease is live."""
        return (
            self.status is RequestStatus.PENDING
            and self.lease_until is not None
            and self.lease_until > now
        )

    def with_wait(self, now: datetime, queue_position: int | None) -> RequestState:
        """The status-while-waiting fields at ``now``: a queued request has its position and
        no start; a building one its start and, from the progress rate so far, an estimate
        of when it completes (none until some progress is made)."""
        if self.status is not RequestStatus.PENDING:
            return self
        if not self.building(now):
            return replace(self, queue_position=queue_position, started_at=None)
        return replace(
            self, estimated_completion_at=estimate_completion(self.started_at, self.progress, now)
        )


def estimate_completion(
    started_at: datetime | None, progress: float, now: datetime
) -> datetime | None:
    """When a build that began at ``started_at`` and is ``progress`` done at ``now`` ends,
    if it keeps its rate so far; None before the first progress is known."""
    if started_at is None or progress <= 0.0 or now < started_at:
        return None
    if progress >= 1.0:
        return now
    return max(started_at + (now - started_at) / progress, now)


def warnings_for(spec: ReportRequest, now: datetime) -> tuple[str, ...]:
    """The recent-data notice of api.md section 5."""
    return (RECENT_DATA_WARNING,) if spec.end_time > now - RECENT_WINDOW else ()


class _Errors:
    """Collects every problem of one body so the client sees them all at once."""

    def __init__(self) -> None:
        self.items: list[ErrorItem] = []

    def add(self, name: str, detail: str, pointer: str | None = None) -> None:
        if len(self.items) >= MAX_ERRORS:
            return  # enough to act on; a huge bad body must not make a huge answer
        self.items.append(
            ErrorItem("invalid_parameter", "Invalid parameter", detail, pointer or f"/{name}")
        )

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidInput.many(self.items)


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message (never a deep repr)."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    return "an object" if isinstance(value, dict) else "a list"


# The integers a JSON parser reads exactly (64-bit): the range the schema states.
JSON_INT_RANGE = (-(2**63), 2**64 - 1)
_INT_LOW, _INT_HIGH = JSON_INT_RANGE


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(
    body: dict[str, Any], name: str, allowed: Callable[[int], Any], errors: _Errors
) -> list[Any] | None:
    if name not in body or body[name] is None:
        return None
    raw = body[name]
    if not isinstance(raw, list):
        errors.add(name, f"{name} must be a list of integers")
        return None
    if len(raw) > MAX_LIST_ITEMS:
        errors.add(name, f"{name} may hold at most {MAX_LIST_ITEMS} items, got {len(raw)}")
        return None
    out = []
    for index, item in enumerate(raw):
        if not _is_int(item):
            errors.add(
                name, f"{name} items must be integers, got {_show(item)}", f"/{name}/{index}"
            )
            continue
        try:
            out.append(allowed(item))
        except ValueError:
            errors.add(name, f"{name} has no value {item}{_valid(allowed)}", f"/{name}/{index}")
    return out


def _valid(allowed: Callable[[int], Any]) -> str:
    """``: valid values are 1 (complete), 2 (incomplete), 3 (errors)`` for an enum."""
    if not isinstance(allowed, type) or not issubclass(allowed, IntEnum):
        return ""
    names = ", ".join(f"{m.value} ({m.name.lower()})" for m in allowed)
    return f": valid values are {names}"


def _str_list(
    body: dict[str, Any], name: str, errors: _Errors, *, ints_ok: bool = False
) -> list[str] | None:
    if name not in body or body[name] is None:
        return None
    raw = body[name]
    if not isinstance(raw, list):
        errors.add(name, f"{name} must be a list of strings")
        return None
    if len(raw) > MAX_LIST_ITEMS:
        errors.add(name, f"{name} may hold at most {MAX_LIST_ITEMS} ids, got {len(raw)}")
        return None
    out: list[str] = []
    for index, item in enumerate(raw):
        if ints_ok and _is_int(item):
            out.append(str(item))
        elif (
            ints_ok
            and isinstance(item, float)
            and item.is_integer()
            and _INT_LOW <= item <= _INT_HIGH
        ):
            out.append(str(int(item)))  # 15221.0 is the integer 15221 in JSON
        elif isinstance(item, str) and item.strip():
            out.append(item.strip())
        else:
            kind = "strings or integers" if ints_ok else "non-empty strings"
            errors.add(name, f"{name} items must be {kind}, got {_show(item)}", f"/{name}/{index}")
            continue
        if len(out[-1]) > MAX_ID_LENGTH:
            errors.add(
                name,
                f"{name} items may be at most {MAX_ID_LENGTH} characters long",
                f"/{name}/{index}",
            )
    return list(dict.fromkeys(out))


def _bool(body: dict[str, Any], name: str, errors: _Errors) -> bool:
    raw = body.get(name)
    if raw is None:
        return False
    if not isinstance(raw, bool):
        errors.add(name, f"{name} must be true or false")
        return False
    return raw


def _zone(body: dict[str, Any], errors: _Errors) -> str:
    raw = body.get("timezone")
    if raw is None:
        return "UTC"
    if not isinstance(raw, str) or not raw:
        errors.add("timezone", "timezone must be an IANA time zone name such as America/Chicago")
        return "UTC"
    try:
        get_zone(raw)
    except ZoneNotFound:
        errors.add(
            "timezone",
            f"unknown time zone {_show(raw)}: use an IANA name such as America/Chicago",
        )
        return "UTC"
    return raw


def _window(
    body: dict[str, Any], zone_name: str, now: datetime, errors: _Errors, *, end_required: bool
) -> tuple[datetime, datetime] | None:
    zone = get_zone(zone_name)
    times: dict[str, datetime] = {}
    for name in ("start_time", "end_time"):
        raw = body.get(name)
        if raw is None:
            if name == "start_time" or end_required:
                errors.add(name, f"{name} is required (ISO 8601, e.g. 2024-02-22T00:00:00Z)")
            continue
        if not isinstance(raw, str):
            errors.add(name, f"{name} must be an ISO 8601 string")
            continue
        try:
            times[name] = parse_instant(raw, zone)
        except ValueError as exc:
            errors.add(name, f"{name}: {exc}")
    if "start_time" not in times:
        return None
    if "end_time" not in times:
        if end_required or body.get("end_time") is not None:
            return None
        times["end_time"] = now.astimezone(UTC).replace(microsecond=0)
        if times["end_time"] <= times["start_time"]:
            errors.add(
                "start_time",
                "start_time is in the future: without end_time the report ends now; "
                "give a start_time in the past, or an end_time after it",
            )
            return None
    if times["end_time"] <= times["start_time"]:
        errors.add("end_time", "end_time must be after start_time")
        return None
    return times["start_time"], times["end_time"]


def _report_name(
    body: dict[str, Any], window: tuple[datetime, datetime] | None, zone: str, errors: _Errors
) -> str:
    raw = body.get("report_name")
    if raw is None:
        if window is None:
            return ""
        tz = get_zone(zone)
        return f"mdr_{window[0].astimezone(tz).isoformat()}_{window[1].astimezone(tz).isoformat()}"
    if not isinstance(raw, str) or not 1 <= len(raw) <= MAX_TEXT_LENGTH:
        errors.add(
            "report_name", f"report_name must be a string of 1 to {MAX_TEXT_LENGTH} characters"
        )
        return ""
    return raw


def _extensions(body: dict[str, Any], errors: _Errors) -> dict[str, Any]:
    out: dict[str, Any] = {
        "include_message_body": _bool(body, "include_message_body", errors),
        "select_all_managed_accounts": _bool(body, "select_all_managed_accounts", errors),
        "managed_accounts": tuple(_str_list(body, "managed_accounts", errors) or ()),
    }
    fmt = body.get("format")
    if fmt is None:
        out["format"] = "csv"
    elif not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        errors.add("format", f"format must be one of {', '.join(FORMATS)}")
    else:
        out["format"] = fmt.lower()
    url = body.get("webhook_url")
    if url is not None:
        try:
            parsed = urlparse(url) if isinstance(url, str) else None
        except ValueError:  # e.g. "http://[": an unclosed IPv6 literal
            parsed = None
        if (
            parsed is None
            or parsed.scheme not in ("http", "https")
            or not parsed.netloc
            or len(url) > MAX_URL_LENGTH
        ):
            errors.add(
                "webhook_url",
                f"webhook_url must be an absolute http or https URL of at most {MAX_URL_LENGTH}"
                " characters",
            )
        else:
            out["webhook_url"] = url
    return out


def _record_types(body: dict[str, Any], errors: _Errors) -> tuple[RecordType, ...]:
    values = _int_list(body, "record_types", RecordType, errors)
    if values is None:
        if body.get("record_types") is None:
            return (RecordType.COMPLETE,)
        return ()
    if not values and "record_types" in body:
        if not any(e.pointer and e.pointer.startswith("/record_types") for e in errors.items):
            errors.add(
                "record_types", "record_types must not be empty: give one or more of 1, 2, 3"
            )
        return ()
    return tuple(sorted(set(values)))


def _body_object(body: Any, *, ignored_unknown: bool = False) -> dict[str, Any]:
    """``body`` as an object whose strings are plain text and whose nesting is bounded;
    ``ignored_unknown``: fields no surface reads are ignored, so only their depth counts."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", pointer="")
    where, reason = _bad_text_or_depth(body, V1_FIELDS if ignored_unknown else None)
    if where is not None:
        raise InvalidInput(reason, pointer=where)
    return body


_TEXT = re.compile(TEXT_PATTERN)


def _bad_text_or_depth(body: dict[str, Any], read: frozenset[str] | None) -> tuple[str | None, str]:
    """The JSON pointer of the first string (or key) holding a control character such as
    NUL (no field has a use for one, and some parsers stop at them), or of a value nested
    past MAX_BODY_DEPTH; with the reason. With ``read``, top-level fields not in it are
    checked for depth only (a surface that ignores them never reads their text)."""
    stack: list[tuple[str, int, Any, bool]] = [("", 0, body, True)]
    while stack:  # iterative: a body may nest up to the JSON parser's depth limit
        pointer, depth, value, text = stack.pop()
        if isinstance(value, str) and text:
            if not _TEXT.fullmatch(value):
                return pointer, "text may not hold control characters (U+0000 to U+001F, U+007F)"
            continue
        if isinstance(value, dict | list) and depth >= MAX_BODY_DEPTH:
            return pointer, f"the body may nest at most {MAX_BODY_DEPTH} levels deep"
        children: list[tuple[str, int, Any, bool]] = []
        if isinstance(value, dict):
            for key, item in value.items():
                read_here = text and (read is None or depth > 0 or key in read)
                if read_here and not _TEXT.fullmatch(key):
                    return pointer or "/", "a field name may not hold control characters"
                escaped = key.replace("~", "~0").replace("/", "~1")
                children.append((f"{pointer}/{escaped}", depth + 1, item, read_here))
        elif isinstance(value, list):
            children = [(f"{pointer}/{i}", depth + 1, item, text) for i, item in enumerate(value)]
        stack.extend(reversed(children))  # the first bad value in body order is named
    return None, ""


def parse_v1(body: Any, now: datetime) -> ReportRequest:
    """Validate a v1 create body; raise InvalidInput listing every problem."""
    body = _body_object(body)
    errors = _Errors()
    for name in body:
        if name not in V1_FIELDS:
            errors.add(name, f"unknown field '{name}'")

    zone = _zone(body, errors)
    window = _window(body, zone, now, errors, end_required=False)

    call_types = _int_list(body, "call_types", Direction, errors)
    direction_names = _str_list(body, "directions", errors)
    directions: list[Direction] = []
    for index, name in enumerate(direction_names or ()):
        try:
            directions.append(Direction[name.upper()])
        except KeyError:
            errors.add(
                "directions",
                f"directions items must be 'inbound' or 'outbound', got {_show(name)}",
                f"/directions/{index}",
            )
    effective = set(directions) or set(call_types or ()) or set(Direction)
    if directions and call_types and set(directions) != set(call_types):
        errors.add(
            "call_types",
            "call_types and directions disagree: send one of them, or the same set in both",
        )

    return _finish(body, errors, zone, window, effective)


def parse_v2(body: Any, now: datetime) -> ReportRequest:
    """Validate a v2 legacy body (api.md section 9); unknown fields are ignored there."""
    body = _body_object(body, ignored_unknown=True)
    errors = _Errors()
    zone = _zone(body, errors)
    window = _window(body, zone, now, errors, end_required=True)
    directions = _int_list(body, "directions", Direction, errors) or []
    return _finish(body, errors, zone, window, set(directions) or set(Direction))


def _finish(
    body: dict[str, Any],
    errors: _Errors,
    zone: str,
    window: tuple[datetime, datetime] | None,
    directions: set[Direction],
) -> ReportRequest:
    """The fields both surfaces spell alike; raises with every problem found on the way."""
    record_types = _record_types(body, errors)
    connections = _str_list(body, "connections", errors, ints_ok=True) or []
    profiles = _str_list(body, "profiles", errors) or []
    filters, filter_errors = parse_filters(body.get("filters"))
    for item in filter_errors:
        if len(errors.items) < MAX_ERRORS:
            errors.items.append(item)
    report_name = _report_name(body, window, zone, errors)
    extensions = _extensions(body, errors)
    errors.raise_if_any()
    assert window is not None
    return ReportRequest(
        start_time=window[0],
        end_time=window[1],
        timezone=zone,
        directions=tuple(sorted(directions)),
        record_types=record_types,
        connections=tuple(connections),
        profiles=tuple(profiles),
        report_name=report_name,
        filters=filters,
        **extensions,
    )
