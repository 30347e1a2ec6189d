"""Request bodies shown in ``/docs`` that succeed when sent as is (tests send each one).

The window lies in the past, so a create is valid whenever it is sent; the ingest
record belongs to ``acct-01``, the account ``mdr demo`` creates.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["INGEST_EXAMPLE", "INGEST_NDJSON_EXAMPLE", "V1_EXAMPLE", "V2_EXAMPLE"]

V1_EXAMPLE: dict[str, Any] = {
    "start_time": "2024-02-22T00:00:00",
    "end_time": "2024-02-29T00:00:00",
    "timezone": "America/Chicago",
    "directions": ["outbound"],
    "record_types": [1, 3],
    "filters": [
        {"filter_type": "and", "cli": "+1312", "cli_filter": "starts_with"},
        {"filter_type": "and", "tags_list": ["campaign-7"]},
    ],
    "report_name": "outbound from +1312, campaign-7",
    "format": "csv",
}

V2_EXAMPLE: dict[str, Any] = {
    "start_time": "2024-02-22T00:00:00Z",
    "end_time": "2024-02-29T00:00:00Z",
    "directions": [2],
    "record_types": [1],
    "filters": [{"filter_type": "and", "cld": "555", "cld_filter": "contains"}],
    "report_name": "outbound to numbers with 555",
}

INGEST_EXAMPLE: list[dict[str, Any]] = [
    {
        "id": "40317f5c-8d0e-4b4b-9f0a-0c1d2e3f4a5b",
        "account_id": "acct-01",
        "created_at": "2024-02-22T15:04:05+00:00",
        "sent_at": "2024-02-22T15:04:06+00:00",
        "direction": "outbound",
        "cli": "+13125550100",
        "cld": "+447700900123",
        "parts": 1,
        "status": "delivered",
        "rate": "0.004000",
        "cost": "0.004000",
        "tags": ["campaign-7"],
    }
]

INGEST_NDJSON_EXAMPLE = "".join(json.dumps(record) + "\n" for record in INGEST_EXAMPLE)
