"""An independent reference implementation of api.md sections 4 to 7, in plain Python.

It reads the request object as the API validated it and the records as plain
dicts, and writes the CSV report with the ``csv`` module.  It shares no code
with the query compiler or the engines (only the pinned zone loader, which
the spec names as the one source of zone rules), so a comparison with an
engine's file checks both against the spec.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.domain.times import get_zone

Record = dict[str, Any]

# api.md section 6, written out again on purpose.
STATUSES = {
    1: ("delivered", "delivery_unconfirmed", "received"),
    2: ("queued", "sending", "sent"),
    3: ("sending_failed", "delivery_failed"),
}
RECORD_TYPE_NAMES = {1: "complete", 2: "incomplete", 3: "error"}

# api.md section 7.
COLUMNS = [
    "id",
    "created_at",
    "sent_at",
    "completed_at",
    "direction",
    "cli",
    "cld",
    "message_type",
    "parts",
    "status",
    "record_type",
    "error_code",
    "carrier",
    "mcc",
    "mnc",
    "country_code",
    "connection_id",
    "profile_id",
    "tags",
    "rate",
    "cost",
    "currency",
    "media_size_bytes",
]


def latest_versions(files: Iterable[Sequence[Record]]) -> list[Record]:
    """One version per id: the greatest ``updated_at``; on a tie, the one listed first."""
    latest: dict[str, Record] = {}
    for rows in files:
        for row in rows:
            current = latest.get(row["id"])
            if current is None or row["updated_at"] > current["updated_at"]:
                latest[row["id"]] = row
    return list(latest.values())


def _plain_number(number: str) -> str:
    if number.startswith("+"):
        number = number[1:]
    return number.lower()


def _filter_holds(spec: dict[str, Any], row: Record) -> bool:
    if "tags_list" in spec:
        wanted = spec["tags_list"]
        return any(tag in wanted for tag in row["tags"] or [])
    field = "cli" if "cli" in spec else "cld"
    value = _plain_number(spec[field])
    subject = _plain_number(row[field])
    how = spec[f"{field}_filter"]
    if how == "contains":
        return value in subject
    if how == "starts_with":
        return subject.startswith(value)
    assert how == "ends_with"
    return subject.endswith(value)


def _filters_hold(filters: list[dict[str, Any]], row: Record) -> bool:
    """Left to right: ``f1 AND f2 OR f3`` is ``(f1 AND f2) OR f3``."""
    if not filters:
        return True
    result = _filter_holds(filters[0], row)
    for spec in filters[1:]:
        if spec["filter_type"] == "and":
            result = result and _filter_holds(spec, row)
        else:
            result = result or _filter_holds(spec, row)
    return result


def selected(request: ReportRequest, accounts: Iterable[str], rows: list[Record]) -> list[Record]:
    """The latest versions that the request's criteria select, in report order."""
    accounts = set(accounts)
    statuses = {s for rt in request.record_types for s in STATUSES[int(rt)]}
    directions = {d.name.lower() for d in request.directions}
    filters = [f.to_json() for f in request.filters]
    out = [
        row
        for row in rows
        if row["account_id"] in accounts
        and request.start_time <= row["created_at"] < request.end_time
        and row["direction"] in directions
        and row["status"] in statuses
        and (not request.connections or row["connection_id"] in request.connections)
        and (not request.profiles or row["profile_id"] in request.profiles)
        and _filters_hold(filters, row)
    ]
    out.sort(key=lambda row: (row["created_at"], row["id"].encode()))
    return out


def _timestamp(value: datetime | None, zone_name: str) -> str:
    return "" if value is None else value.astimezone(get_zone(zone_name)).isoformat()


def _decimal(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.6f}"


def report_cells(row: Record, request: ReportRequest) -> list[str]:
    """One report row as text cells (the CSV's, and what other formats must agree with)."""
    record_type = next(rt for rt, names in STATUSES.items() if row["status"] in names)
    cells: dict[str, str] = {}
    for name in COLUMNS:
        value = row.get(name)
        if name in ("created_at", "sent_at", "completed_at"):
            cells[name] = _timestamp(value, request.timezone)
        elif name == "record_type":
            cells[name] = RECORD_TYPE_NAMES[record_type]
        elif name == "tags":
            cells[name] = ";".join(value or [])
        elif name in ("rate", "cost"):
            cells[name] = _decimal(value)
        else:
            cells[name] = "" if value is None else str(value)
    out = [cells[name] for name in COLUMNS]
    if request.include_message_body:
        out.append(row["message_body"] or "")
    return out


def reference_csv(
    request: ReportRequest, accounts: Iterable[str], files: dict[date, list[list[Record]]]
) -> bytes:
    """The report file the spec asks for, given the lake's files per day in snapshot order."""
    rows = latest_versions(f for day in sorted(files) for f in files[day])
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS + (["message_body"] if request.include_message_body else []))
    for row in selected(request, accounts, rows):
        writer.writerow(report_cells(row, request))
    return buffer.getvalue().encode("utf-8")
