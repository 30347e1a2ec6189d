"""The record (MDR) schema of api.md section 13, as one Arrow schema, and the lake's.

Timestamps are UTC instants with microsecond precision; ``rate`` and ``cost``
are exact decimals (never binary floats) with 6 decimal places.

The lake stores two more columns, ``cli_folded`` and ``cld_folded``: the
numbers as number filters compare them (:func:`fold_number`), computed here in
Python once, when a row is written.  SQL engines' ``lower()`` differs from
Python's (DuckDB maps a word-final ``Σ`` to ``σ`` and ``İ`` to ``i``; Python gives
``ς`` and ``i̇``), so every engine compares these stored strings instead.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "FOLDED_COLUMNS",
    "LAKE_SCHEMA",
    "MONEY",
    "RECORD_COLUMNS",
    "RECORD_SCHEMA",
    "REPORT_COLUMNS",
    "TIMESTAMP",
    "fold_number",
    "fold_numbers",
    "with_folded_numbers",
]

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


# Number column -> its folded twin in the lake (see the module docstring).
FOLDED_COLUMNS = {"cli": "cli_folded", "cld": "cld_folded"}

LAKE_SCHEMA = pa.schema(
    [*RECORD_SCHEMA, *(pa.field(name, pa.string()) for name in FOLDED_COLUMNS.values())]
)
"""What a lake data file holds: the record columns, then the folded numbers."""


def fold_number(number: str) -> str:
    """The comparable form of a CLI/CLD or match value (api.md section 4): one leading ``+``
    dropped, then Python's Unicode lower case.

    Lower case (not casefold): alphanumeric sender ids are the case that matters,
    and ``str.lower`` keeps the final sigma and the dotted capital I as Unicode says.
    """
    return number.removeprefix("+").lower()


def fold_numbers(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`fold_number` over a string column: ASCII rows in bulk, the rest in Python."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.string())
    plus = pc.fill_null(pc.starts_with(values, "+"), False)
    folded = pc.ascii_lower(pc.if_else(plus, pc.utf8_slice_codeunits(values, 1), values))
    other = pc.invert(pc.fill_null(pc.string_is_ascii(values), True))
    if not pc.any(other).as_py():
        return folded
    fixed = [fold_number(v) for v in values.filter(other).to_pylist()]
    return pc.replace_with_mask(folded, other, pa.array(fixed, pa.string()))


def with_folded_numbers(table: pa.Table) -> pa.Table:
    """``table`` (the record columns, maybe old folded ones) as LAKE_SCHEMA, folded afresh."""
    records = table.select(RECORD_COLUMNS).cast(RECORD_SCHEMA)
    for number, folded in FOLDED_COLUMNS.items():
        records = records.append_column(folded, fold_numbers(records.column(number)))
    return records.cast(LAKE_SCHEMA)
