"""Small hand-made MDRs for lake, ingest and validation tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from mdr_reporting.domain.validation import validate_records
from mdr_reporting.ingest.readers import rows_to_table

BASE = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def record(number: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid record as a client would send it (JSON types)."""
    created = BASE + timedelta(seconds=number)
    row: dict[str, Any] = {
        "id": f"msg-{number:06d}",
        "account_id": "acct-a",
        "created_at": created.isoformat(),
        "sent_at": (created + timedelta(seconds=1)).isoformat(),
        "direction": "outbound",
        "cli": "+13125550100",
        "cld": "+447700900123",
        "parts": 1,
        "status": "sent",
        "rate": "0.004000",
        "cost": "0.004000",
        "tags": ["otp"],
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not None or k not in changes}


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def table(rows: list[dict[str, Any]]) -> pa.Table:
    """Validated RECORD_SCHEMA table of ``rows``; fails the test when they are invalid."""
    raw, prior = rows_to_table(rows)
    checked = validate_records(raw, prior=prior)
    assert checked.table is not None, checked.problems
    return checked.table
