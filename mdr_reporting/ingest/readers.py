"""Turning NDJSON, JSON arrays, CSV and Parquet into raw record tables, chunk by chunk.

Well-formed NDJSON takes a fast path: pyarrow's JSON reader with the record types
spelled out, which parses ``rate``/``cost`` from their decimal text exactly (JSON
numbers or strings; more than 6 decimal places fails).  It is shown only blocks whose
every line starts with ``{`` (a block starting with ``null`` crashes the process) and
its output must be valid UTF-8.  Anything else goes through the exact path, line by
line: orjson first (it refuses bytes that are not UTF-8, lone surrogates and deep
nesting), ``json.loads(parse_float=Decimal)`` where a number needs exact decimals,
naming every bad line and field.  Large files are read in chunks so memory stays
bounded.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import orjson
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
FIRST_CHUNK_BYTES = 1024 * 1024  # a small first block: progress (and its ETA) from the start
CHUNK_ROWS = 500_000
# Blocks of this size are parsed in parallel; a longer line takes the exact path.
JSON_BLOCK_BYTES = 1 << 20
_KNOWN = frozenset(RECORD_COLUMNS)

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
    keyed by (row, field), with field ``""`` for a row that could not be read at all
    (or the field that made it unreadable: such rows are in ``unread``)."""

    table: pa.Table
    first_line: int = 1
    line_map: Callable[[int], int] | None = None
    prior: dict[tuple[int, str], str] = field(default_factory=dict)
    consumed: int = 0  # bytes (text) or rows (Parquet) of the source this chunk used up
    unread: frozenset[int] = frozenset()

    def line_of(self, row: int) -> int:
        return self.line_map(row) if self.line_map else self.first_line + row


# -- JSON ---------------------------------------------------------------------------------

# A line that does not start with "{" (or is not empty): the fast reader is never shown it
# (Arrow's JSON reader crashes the process on a block that starts with ``null``).
_ODD_LINE = re.compile(rb"\n[^{\n]")


def parse_ndjson(data: bytes, first_line: int = 1) -> RawChunk:
    """One block of NDJSON (whole lines); blank lines are allowed and skipped."""
    if not _fast_safe(data):
        return _ndjson_exact(data, first_line, len(data))
    try:
        table = pjson.read_json(
            io.BytesIO(data),
            read_options=pjson.ReadOptions(block_size=JSON_BLOCK_BYTES),
            parse_options=pjson.ParseOptions(
                explicit_schema=_FAST_JSON_SCHEMA, unexpected_field_behavior="error"
            ),
        )
        table.validate(full=True)  # text that is not UTF-8 (or a lone surrogate) fails here
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return _ndjson_exact(data, first_line, len(data))
    objects = data.count(b"\n{") + (data[:1] == b"{")  # lines that hold a record
    if table.num_rows != objects:  # two values on one line: the exact path names it
        return _ndjson_exact(data, first_line, len(data))
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    line_map = None
    if table.num_rows != lines:
        numbers = [first_line + i for i, line in enumerate(data.split(b"\n")) if line.strip()]
        line_map = numbers.__getitem__
    return RawChunk(table, first_line, line_map, consumed=len(data))


def _fast_safe(data: bytes) -> bool:
    """Whether every line is empty or starts with "{": the only input handed to Arrow."""
    return data[:1] in (b"{", b"\n") and _ODD_LINE.search(data) is None


def _ndjson_exact(data: bytes, first_line: int, consumed: int) -> RawChunk:
    rows: list[Any] = []
    numbers: list[int] = []
    prior: dict[tuple[int, str], str] = {}
    unread: set[int] = set()
    for i, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        numbers.append(first_line + i)
        try:
            rows.append(load_json(line))
        except BadJson as bad:
            prior[(len(rows), bad.field)] = bad.reason
            unread.add(len(rows))
            rows.append(_UNREAD)
    table, found = rows_to_table(rows)
    return RawChunk(
        table, first_line, numbers.__getitem__, {**found, **prior}, consumed, frozenset(unread)
    )


def parse_json_array(data: bytes) -> RawChunk:
    """A JSON array of record objects; "line" is the 1-based position in the array."""
    try:
        value = load_json(data, nested=True)
    except BadJson as bad:
        return _unread(bad.row, bad.field, bad.reason)
    if not isinstance(value, list):
        return _unread(0, "", "expected a JSON array of records, or NDJSON")
    if not value:
        return _unread(0, "", "the array is empty: send at least one record")
    table, prior = rows_to_table(value)
    return RawChunk(table, 1, None, prior, len(data))


def _unread(row: int, field: str, reason: str) -> RawChunk:
    """A chunk that stands for input that could not be read: one problem, nothing else."""
    table, _ = rows_to_table([_UNREAD] * (row + 1))
    return RawChunk(table, 1, None, {(row, field): reason}, 0, frozenset(range(row + 1)))


class BadJson(ValueError):
    """A JSON text that cannot be read; ``row``/``field`` locate it when they are known."""

    def __init__(self, reason: str, field: str = "", row: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.row = row


_TEXT_CHECK_DEPTH = 8  # a record is an object holding at most a list of strings


def load_json(text: bytes, *, nested: bool = False) -> Any:
    """One JSON value, read safely: orjson first, which refuses bytes that are not UTF-8,
    lone surrogates and deep nesting; numbers with a fraction (or past 64 bits) are then
    read again by :mod:`json` with exact decimals. ``nested``: ``text`` is an array of
    records, so a problem is located by its position (``row``) too."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return _load_slowly(text, str(exc), nested)
    if not _has_float(value, nested):
        return value
    return _load_slowly(text, None, nested)


def _load_slowly(text: bytes, refused: str | None, nested: bool) -> Any:
    """Python's parser: exact decimals, and the field that holds bad text named."""
    try:
        decoded, not_utf8 = text.decode("utf-8"), False
    except UnicodeDecodeError:
        decoded, not_utf8 = text.decode("utf-8", "surrogateescape"), True
    if refused is not None and "depth" in refused:
        raise BadJson(f"not valid JSON: nested too deeply ({refused})")
    try:
        value = json.loads(decoded, parse_float=Decimal, parse_constant=_constant)
    except RecursionError:
        raise BadJson("not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise BadJson(f"not valid JSON: {refused or exc}") from None
    where = _bad_text(value)
    if where is not None:
        row, field = (where[0], where[1:]) if nested and where else (0, where)
        name = str(field[0]) if field and _valid_text(str(field[0])) else ""
        if not_utf8:
            raise BadJson("is not valid UTF-8 text", name, int(row))
        raise BadJson(
            "holds a lone surrogate (\\ud800-\\udfff): not valid Unicode text", name, int(row)
        )
    if refused is not None and not _numbers_only(refused):
        raise BadJson(f"not valid JSON: {refused}")
    return value


def _numbers_only(message: str) -> bool:
    """orjson refused only a number that Python reads exactly (e.g. 1e400)."""
    return message.startswith("number")


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _has_float(value: Any, nested: bool) -> bool:
    """Whether a record (or, ``nested``, any record of a list) holds a float at its top
    level or in a list there: the only places where a number is ever read."""
    if nested and isinstance(value, list):
        return any(_has_float(item, False) for item in value)
    if not isinstance(value, dict):
        return False
    for item in value.values():
        if isinstance(item, float):
            return True
        if isinstance(item, list) and any(isinstance(x, float) for x in item):
            return True
    return False


def _bad_text(value: Any, depth: int = 0) -> tuple[Any, ...] | None:
    """The path of the first string (or key) that is not valid Unicode, or None."""
    if isinstance(value, str):
        return None if _valid_text(value) else ()
    if depth > _TEXT_CHECK_DEPTH:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not _valid_text(key):
                return (key,)
            inner = _bad_text(item, depth + 1)
            if inner is not None:
                return (key, *inner)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            inner = _bad_text(item, depth + 1)
            if inner is not None:
                return (index, *inner)
    return None


def _valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_UNREAD: Any = object()  # the place of a row that could not be read (its problem is known)
# JSON types are strict: these take only numbers (no string), the rest of the scalars
# only strings; rate and cost take both (api.md section 13).
_JSON_INTEGERS = frozenset({"parts", "media_size_bytes"})
_JSON_DECIMALS = frozenset({"rate", "cost"})


def rows_to_table(rows: list[Any]) -> tuple[pa.Table, dict[tuple[int, str], str]]:
    """Parsed JSON values into text columns, noting every value of the wrong JSON type."""
    columns: dict[str, list[Any]] = {name: [None] * len(rows) for name in RECORD_COLUMNS}
    unknown: dict[str, list[Any]] = {}
    problems: dict[tuple[int, str], str] = {}
    for row, record in enumerate(rows):
        if record is _UNREAD:
            continue
        if not isinstance(record, dict):
            problems[(row, "")] = f"expected a JSON object, got {_json_type(record)}"
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
            elif name in _JSON_INTEGERS:
                if isinstance(value, int) and not isinstance(value, bool):
                    columns[name][row] = str(value)
                elif isinstance(value, Decimal) and value == value.to_integral_value():
                    columns[name][row] = str(int(value))  # 4787.0 is the integer 4787 in JSON
                else:
                    problems[(row, name)] = f"must be an integer, got {_json_type(value)}"
            elif name in _JSON_DECIMALS:
                if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
                    columns[name][row] = str(value)
                else:
                    problems[(row, name)] = f"must be a number or a string, got {_json_type(value)}"
            elif isinstance(value, str):
                columns[name][row] = value
            else:
                problems[(row, name)] = f"must be a string, got {_json_type(value)}"
    arrays = [pa.array(columns[f.name], type=f.type) for f in RAW_TEXT_SCHEMA]
    table = pa.Table.from_arrays(arrays, schema=RAW_TEXT_SCHEMA)
    for name, values in unknown.items():
        table = table.append_column(name, pa.array(values, type=pa.string()))
    return table, problems


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | Decimal | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return type(value).__name__


# -- CSV ----------------------------------------------------------------------------------

_CSV_TYPES = {name: (pa.string()) for name in RECORD_COLUMNS}


def _csv_options() -> tuple[pcsv.ReadOptions, pcsv.ParseOptions, pcsv.ConvertOptions]:
    return (
        pcsv.ReadOptions(block_size=8 * 1024 * 1024),
        pcsv.ParseOptions(newlines_in_values=True),
        pcsv.ConvertOptions(
            column_types=_CSV_TYPES,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            check_utf8=False,  # validation names the line and field of text that is not UTF-8
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
        yield _at_line(next_line, f"not valid CSV: {exc}")
    except UnicodeDecodeError:
        yield _at_line(next_line, "not valid CSV: the header is not UTF-8 text")


def _at_line(line: int, reason: str) -> RawChunk:
    table, _ = rows_to_table([_UNREAD])
    return RawChunk(table, line, prior={(0, ""): reason}, unread=frozenset({0}))


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
    size = FIRST_CHUNK_BYTES
    while True:
        block = handle.read(size)
        size = CHUNK_BYTES
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
    return RawChunk(
        chunk.table, chunk.first_line, chunk.line_map, chunk.prior, consumed, chunk.unread
    )
