"""The record (MDR) schema of api.md section 13, as one Arrow schema.

Timestamps are UTC instants with microsecond precision; ``rate`` and ``cost``
are exact decimals (never binary floats) with 6 decimal places.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["MONEY", "RECORD_COLUMNS", "RECORD_SCHEMA", "REPORT_COLUMNS", "TIMESTAMP"]

TIMESTAMP = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(18, 6)

RECORD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("created_at", TIMESTAMP, nullable=False),
        pa.field("updated_at", TIMESTAMP, nullable=False),
        pa.field("sent_at", TIMESTAMP),
        pa.field("completed_at", TIMESTAMP),
        pa.field("direction", pa.string(), nullable=False),
        pa.field("cli", pa.string(), nullable=False),
        pa.field("cld", pa.string(), nullable=False),
        pa.field("message_type", pa.string(), nullable=False),
        pa.field("parts", pa.int32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_code", pa.string()),
        pa.field("carrier", pa.string()),
        pa.field("mcc", pa.string()),
        pa.field("mnc", pa.string()),
        pa.field("country_code", pa.string()),
        pa.field("connection_id", pa.string()),
        pa.field("profile_id", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("rate", MONEY),
        pa.field("cost", MONEY),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("media_size_bytes", pa.int64()),
        pa.field("message_body", pa.string()),
    ]
)

RECORD_COLUMNS = tuple(RECORD_SCHEMA.names)

# The report file's columns, in order (api.md section 7); message_body is added
# at the end when include_message_body is true.
REPORT_COLUMNS = (
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
)
