"""Turning NDJSON, JSON arrays, CSV and Parquet into raw record tables, chunk by chunk.

Well-formed NDJSON takes a fast path: pyarrow's JSON reader with the record types
spelled out, which parses ``rate``/``cost`` from their decimal text exactly (JSON
numbers or strings; more than 6 decimal places fails).  Anything it refuses goes
through the exact path, ``json.loads(parse_float=Decimal)`` line by line, which
names every bad line.  Large files are read in chunks so memory stays bounded.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from mdr_reporting.domain.records import MONEY, RECORD_COLUMNS
from mdr_reporting.domain.validation import RAW_TEXT_SCHEMA

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_ROWS",
    "RawChunk",
    "parse_json_array",
    "parse_ndjson",
    "read_file",
    "rows_to_table",
    "total_size",
]

CHUNK_BYTES = 32 * 1024 * 1024
CHUNK_ROWS = 500_000
# Blocks of this size are parsed in parallel; a longer line takes the exact path.
JSON_BLOCK_BYTES = 1 << 20
_KNOWN = frozenset(RECORD_COLUMNS)
_INTEGER_FIELDS = frozenset({"parts", "media_size_bytes"})

# The fast JSON path's types: the reader converts these itself (decimals exactly).
_FAST_JSON_SCHEMA = pa.schema(
    [
        pa.field(
            name,
            {
                "tags": pa.list_(pa.string()),
                "rate": MONEY,
                "cost": MONEY,
                "parts": pa.int64(),
                "media_size_bytes": pa.int64(),
            }.get(name, pa.string()),
        )
        for name in RECORD_COLUMNS
    ]
)


@dataclass(frozen=True)
class RawChunk:
    """Rows as read, before validation; ``prior`` holds problems the reader found,
    keyed by (row, field), with field ``""`` for a row that could not be read at all."""

    table: pa.Table
    first_line: int = 1
    line_map: Callable[[int], int] | None = None
    prior: dict[tuple[int, str], str] = field(default_factory=dict)
    consumed: int = 0  # bytes (text) or rows (Parquet) of the source this chunk used up

    def line_of(self, row: int) -> int:
        return self.line_map(row) if self.line_map else self.first_line + row


# -- JSON ---------------------------------------------------------------------------------


def parse_ndjson(data: bytes, first_line: int = 1) -> RawChunk:
    """One block of NDJSON (whole lines); blank lines are allowed and skipped."""
    try:
        table = pjson.read_json(
            io.BytesIO(data),
            read_options=pjson.ReadOptions(block_size=JSON_BLOCK_BYTES),
            parse_options=pjson.ParseOptions(
                explicit_schema=_FAST_JSON_SCHEMA, unexpected_field_behavior="error"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return _ndjson_exact(data, first_line, len(data))
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    line_map = None
    if table.num_rows != lines:
        numbers = [first_line + i for i, line in enumerate(data.split(b"\n")) if line.strip()]
        line_map = numbers.__getitem__
    return RawChunk(table, first_line, line_map, consumed=len(data))


def _ndjson_exact(data: bytes, first_line: int, consumed: int) -> RawChunk:
    rows: list[Any] = []
    numbers: list[int] = []
    prior: dict[tuple[int, str], str] = {}
    for i, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        numbers.append(first_line + i)
        try:
            rows.append(_loads(line))
        except (ValueError, UnicodeDecodeError) as exc:
            prior[(len(rows), "")] = f"not valid JSON: {exc}"
            rows.append(None)
    table, found = rows_to_table(rows)
    return RawChunk(table, first_line, numbers.__getitem__, {**found, **prior}, consumed)


def parse_json_array(data: bytes) -> RawChunk:
    """A JSON array of record objects; "line" is the 1-based position in the array."""
    try:
        value = _loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        table, _ = rows_to_table([None])
        return RawChunk(table, prior={(0, ""): f"the body is not valid JSON: {exc}"})
    if not isinstance(value, list):
        table, _ = rows_to_table([None])
        return RawChunk(table, prior={(0, ""): "expected a JSON array of records, or NDJSON"})
    table, prior = rows_to_table(value)
    return RawChunk(table, 1, None, prior, len(data))


def _loads(text: bytes) -> Any:
    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    return json.loads(text, parse_float=Decimal, parse_constant=constant)


def rows_to_table(rows: list[Any]) -> tuple[pa.Table, dict[tuple[int, str], str]]:
    """Parsed JSON values into text columns, noting every value of the wrong JSON type."""
    columns: dict[str, list[Any]] = {name: [None] * len(rows) for name in RECORD_COLUMNS}
    unknown: dict[str, list[Any]] = {}
    problems: dict[tuple[int, str], str] = {}
    for row, record in enumerate(rows):
        if record is None:
            continue
        if not isinstance(record, dict):
            problems[(row, "")] = "expected a JSON object"
            continue
        for name, value in record.items():
            if name not in _KNOWN:
                unknown.setdefault(name, [None] * len(rows))[row] = "?"
                continue
            if value is None:
                continue
            if name == "tags":
                if isinstance(value, list) and all(isinstance(tag, str) for tag in value):
                    columns[name][row] = value
                else:
                    problems[(row, name)] = "must be a list of strings"
            elif isinstance(value, str):
                columns[name][row] = value
            elif isinstance(value, int | Decimal) and not isinstance(value, bool):
                whole = isinstance(value, Decimal) and value == value.to_integral_value()
                if name in _INTEGER_FIELDS and whole:
                    value = int(value)  # 4787.0 is the integer 4787 in JSON (and JSON Schema)
                columns[name][row] = str(value)
            else:
                problems[(row, name)] = f"must be a string or a number, got {_json_type(value)}"
    arrays = [pa.array(columns[f.name], type=f.type) for f in RAW_TEXT_SCHEMA]
    table = pa.Table.from_arrays(arrays, schema=RAW_TEXT_SCHEMA)
    for name, values in unknown.items():
        table = table.append_column(name, pa.array(values, type=pa.string()))
    return table, problems


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


# -- CSV ----------------------------------------------------------------------------------

_CSV_TYPES = {name: (pa.string()) for name in RECORD_COLUMNS}


def _csv_options() -> tuple[pcsv.ReadOptions, pcsv.ParseOptions, pcsv.ConvertOptions]:
    return (
        pcsv.ReadOptions(block_size=8 * 1024 * 1024),
        pcsv.ParseOptions(newlines_in_values=True),
        pcsv.ConvertOptions(
            column_types=_CSV_TYPES, strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )


def _csv_chunks(source: Any) -> Iterator[RawChunk]:
    read, parse, convert = _csv_options()
    next_line = 2
    try:
        reader = pcsv.open_csv(
            source, read_options=read, parse_options=parse, convert_options=convert
        )
        for batch in reader:
            yield RawChunk(pa.Table.from_batches([batch]), next_line, consumed=0)
            next_line += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        table, _ = rows_to_table([None])
        yield RawChunk(table, next_line, prior={(0, ""): f"not valid CSV: {exc}"})


# -- files --------------------------------------------------------------------------------


def read_file(path: str | Path) -> Iterator[RawChunk]:
    """The chunks of a ``.ndjson``, ``.csv`` or ``.parquet`` file, each optionally ``.gz``.

    A chunk's ``consumed`` is how far into the file it reaches: rows for plain
    Parquet, bytes of the file as stored otherwise (see :func:`total_size`).
    """
    from mdr_reporting.generator.output import file_format

    fmt, gzipped = file_format(path)
    with open(path, "rb") as raw:
        handle: Any = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        if fmt == "parquet":
            # A path, not the Python file object: Arrow then reads natively, in parallel.
            parquet = pq.ParquetFile(
                pa.BufferReader(handle.read()) if gzipped else str(path), memory_map=not gzipped
            )
            rows = 0
            for table in _prefetched(parquet):
                rows += table.num_rows
                done = rows if not gzipped else raw.tell()
                yield RawChunk(table, rows - table.num_rows + 1, consumed=done)
        elif fmt == "csv":
            for chunk in _csv_chunks(handle):
                yield _at(chunk, raw.tell())
        else:
            for chunk in _ndjson_blocks(handle):
                yield _at(chunk, raw.tell())


def _prefetched(parquet: pq.ParquetFile) -> Iterator[pa.Table]:
    """Row-group runs, the next one read in the background while the caller works."""
    runs = list(_row_group_runs(parquet))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdr-read") as pool:
        ahead = pool.submit(parquet.read_row_groups, runs[0], use_threads=True) if runs else None
        for index in range(len(runs)):
            assert ahead is not None
            table = ahead.result()
            if index + 1 < len(runs):
                ahead = pool.submit(parquet.read_row_groups, runs[index + 1], use_threads=True)
            yield table


def _row_group_runs(parquet: pq.ParquetFile) -> Iterator[list[int]]:
    """Consecutive row groups of about CHUNK_ROWS rows (read with threads, unlike batches)."""
    run: list[int] = []
    rows = 0
    for index in range(parquet.metadata.num_row_groups):
        run.append(index)
        rows += parquet.metadata.row_group(index).num_rows
        if rows >= CHUNK_ROWS:
            yield run
            run, rows = [], 0
    if run:
        yield run


def total_size(path: str | Path) -> int:
    """What ``consumed`` counts up to: rows of plain Parquet, else the file's bytes."""
    from mdr_reporting.generator.output import file_format

    fmt, gzipped = file_format(path)
    if fmt == "parquet" and not gzipped:
        return int(pq.ParquetFile(str(path)).metadata.num_rows)
    return Path(path).stat().st_size


def _ndjson_blocks(handle: BinaryIO) -> Iterator[RawChunk]:
    """Whole-line blocks of about CHUNK_BYTES, numbered by line."""
    carry = b""
    next_line = 1
    while True:
        block = handle.read(CHUNK_BYTES)
        data = carry + block
        if not block:
            if data.strip():
                yield parse_ndjson(data, next_line)
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            continue
        whole, carry = data[:cut], data[cut:]
        yield parse_ndjson(whole, next_line)
        next_line += whole.count(b"\n")


def _at(chunk: RawChunk, consumed: int) -> RawChunk:
    return RawChunk(chunk.table, chunk.first_line, chunk.line_map, chunk.prior, consumed)
