"""Record validation (api.md section 13), vectorised with pyarrow.compute.

Input is a "raw" table: each known column either already has its RECORD_SCHEMA
type (Parquet, the fast JSON path) or holds text (CSV, the exact JSON path),
which is parsed here.  Every check is one kernel over the whole column, so a
million rows validate in seconds; only the few bad cells are ever touched one by
one, to name them.  The result is a RECORD_SCHEMA table or the first problems,
each naming the line, the field and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdr_reporting.domain.enums import DIRECTIONS, STATUS_RECORD_TYPE
from mdr_reporting.domain.records import MONEY, RECORD_COLUMNS, RECORD_SCHEMA, TIMESTAMP
from mdr_reporting.domain.times import MAX_YEAR, MIN_YEAR

__all__ = [
    "MAX_PROBLEMS",
    "RAW_TEXT_SCHEMA",
    "RowProblem",
    "Validated",
    "repeated_rows",
    "validate_records",
]

MAX_PROBLEMS = 100
MAX_ID_LENGTH = 64
MESSAGE_TYPES = ("SMS", "MMS")
STATUSES = tuple(STATUS_RECORD_TYPE)
_LOCATE_CHUNK = 2048
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
# Record timestamps follow the year bounds of requests (a report converts them to any zone).
_FIRST_MICROS = int((datetime(MIN_YEAR, 1, 1, tzinfo=UTC) - _UNIX).total_seconds()) * 1_000_000
_PAST_MICROS = int((datetime(MAX_YEAR + 1, 1, 1, tzinfo=UTC) - _UNIX).total_seconds()) * 1_000_000

_TIMESTAMPS = ("created_at", "updated_at", "sent_at", "completed_at")
_MONEY = ("rate", "cost")
_INTEGERS = {"parts": pa.int32(), "media_size_bytes": pa.int64()}
_REQUIRED_TEXT = ("id", "account_id", "direction", "cli", "cld", "status")
_OPTIONAL_TEXT = (
    "error_code",
    "carrier",
    "mcc",
    "mnc",
    "country_code",
    "connection_id",
    "profile_id",
    "message_body",
)
_FIELD_ORDER = {name: i for i, name in enumerate(RECORD_COLUMNS)}

# What text-based readers (CSV, exact JSON) produce: every scalar as a string.
RAW_TEXT_SCHEMA = pa.schema(
    [
        pa.field(name, pa.list_(pa.string()) if name == "tags" else pa.string())
        for name in RECORD_COLUMNS
    ]
)


@dataclass(frozen=True, order=True)
class RowProblem:
    """One bad cell: ``line`` is 1-based in the input (CSV: the header is line 1)."""

    line: int
    field: str
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class Validated:
    """Either ``table`` (RECORD_SCHEMA, input order) or ``problems`` (first 100, by line)."""

    table: pa.Table | None
    problems: tuple[RowProblem, ...] = ()
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.table is not None


@dataclass
class _Problems:
    """Bad cells gathered per field as masks; only the first few are ever formatted."""

    raw: pa.Table
    prior: Mapping[tuple[int, str], str]
    unread: Collection[int] = ()
    found: list[tuple[int, int, str, str]] = field(default_factory=list)
    count: int = 0
    bad_rows: set[tuple[int, str]] = field(default_factory=set)

    def add(self, name: str, mask: pa.Array, reason: str, show_value: bool = True) -> None:
        mask = pc.fill_null(mask, False)
        bad = int(pc.sum(mask).as_py() or 0)
        if bad == 0:
            return
        self.count += bad
        rows = pc.indices_nonzero(mask).slice(0, MAX_PROBLEMS + len(self.prior)).to_pylist()
        column = self.raw.column(name) if show_value and name in self.raw.column_names else None
        for row in rows:
            if (
                (row, name) in self.prior
                or (row, "") in self.prior
                or (row, name) in self.bad_rows
                or row in self.unread
            ):
                self.count -= 1
                continue
            self.bad_rows.add((row, name))
            text = reason
            if column is not None:
                value = column[row].as_py()
                if value is not None:
                    text = f"{reason}, got {_show(value)}"
            self.found.append((row, _FIELD_ORDER.get(name, len(_FIELD_ORDER)), name, text))


def _show(value: object) -> str:
    return repr(value if not isinstance(value, str) else value[:80])


def validate_records(
    raw: pa.Table,
    *,
    line_of: Callable[[int], int] | None = None,
    first_line: int = 1,
    prior: Mapping[tuple[int, str], str] | None = None,
    unread: Collection[int] = (),
) -> Validated:
    """Check and convert ``raw`` into RECORD_SCHEMA.

    ``line_of`` maps a 0-based row to its line (default ``first_line + row``);
    ``prior`` holds problems a reader already found, keyed by (row, field), which
    win over what this function would say about the same cell; ``unread`` rows could
    not be read at all (their problem is in ``prior``), so nothing else is said of them.
    """
    prior = dict(prior or {})
    line_of = line_of or (lambda row: first_line + row)
    n = raw.num_rows
    problems = _Problems(raw, prior, frozenset(unread))
    raw = problems.raw = _valid_text(raw, problems)
    unknown = [name for name in raw.column_names if name not in _FIELD_ORDER]
    for name in unknown:
        problems.add(name, pc.is_valid(raw.column(name)), "unknown field", show_value=False)

    columns: dict[str, pa.Array] = {}
    for name in _REQUIRED_TEXT:
        columns[name] = _required_text(raw, name, n, problems)
    ids = columns["id"]
    problems.add(
        "id",
        pc.greater(pc.utf8_length(ids), MAX_ID_LENGTH),
        f"must be 1 to {MAX_ID_LENGTH} characters",
        show_value=False,
    )
    problems.add(
        "account_id",
        pc.greater(pc.utf8_length(columns["account_id"]), MAX_ID_LENGTH),
        f"must be 1 to {MAX_ID_LENGTH} characters",
        show_value=False,
    )
    columns["direction"] = _one_of(
        columns["direction"], "direction", DIRECTIONS, problems, pc.utf8_lower
    )
    columns["status"] = _one_of(columns["status"], "status", STATUSES, problems, pc.utf8_lower)

    for name in _TIMESTAMPS:
        columns[name] = _convert(raw, name, n, TIMESTAMP, problems, "must be ISO 8601 with offset")
        micros = pc.cast(columns[name], pa.int64())
        problems.add(
            name,
            pc.or_(pc.less(micros, _FIRST_MICROS), pc.greater_equal(micros, _PAST_MICROS)),
            f"must be in the years {MIN_YEAR} to {MAX_YEAR}",
        )
    problems.add("created_at", pc.is_null(_column(raw, "created_at", n)), "is required")
    columns["updated_at"] = pc.coalesce(columns["updated_at"], _latest(columns))

    message_type = pc.coalesce(pc.cast(_column(raw, "message_type", n), pa.string()), "SMS")
    columns["message_type"] = _one_of(
        message_type, "message_type", MESSAGE_TYPES, problems, pc.utf8_upper
    )

    for name, integer in _INTEGERS.items():
        columns[name] = _convert(raw, name, n, integer, problems, "must be an integer")
    columns["parts"] = pc.coalesce(columns["parts"], pa.scalar(1, pa.int32()))
    problems.add("parts", pc.less(columns["parts"], 1), "must be at least 1")
    problems.add("media_size_bytes", pc.less(columns["media_size_bytes"], 0), "must be >= 0")

    for name in _MONEY:
        columns[name] = _convert(
            raw, name, n, MONEY, problems, "must be a decimal with at most 6 decimal places"
        )

    currency = pc.coalesce(pc.cast(_column(raw, "currency", n), pa.string()), "USD")
    columns["currency"] = _one_of(
        currency,
        "currency",
        ("must be a 3-letter ISO 4217 code",),
        problems,
        pc.utf8_upper,
        pattern="[A-Z]{3}",
    )

    for name in _OPTIONAL_TEXT:
        columns[name] = _convert(raw, name, n, pa.string(), problems, "must be a string")
    columns["tags"] = _tags(raw, n, problems)

    _same_identity(columns, problems)

    if problems.count or prior:
        return _failed(problems, prior, line_of)
    table = pa.table([columns[name] for name in RECORD_COLUMNS], schema=RECORD_SCHEMA)
    return Validated(table)


def _valid_text(raw: pa.Table, problems: _Problems) -> pa.Table:
    """Text cells that are not UTF-8 (Parquet and CSV readers pass bytes through) become
    problems and nulls, before anything reads them as text."""
    for index, name in enumerate(raw.column_names):
        column = raw.column(index)
        kind = column.type.value_type if pa.types.is_list(column.type) else column.type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            continue
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        bad = np.zeros(len(column), dtype=bool)
        for row in range(len(column)):
            try:
                column.slice(row, 1).validate(full=True)
            except pa.ArrowInvalid:
                bad[row] = True
        mask = pa.array(bad)
        problems.add(name, mask, "is not valid UTF-8 text", show_value=False)
        cleaned = pc.if_else(mask, pa.nulls(len(column), column.type), column)
        raw = raw.set_column(index, raw.field(index), cleaned)
    return raw


def _latest(columns: Mapping[str, pa.Array]) -> pa.Array:
    """The default version: the latest of created_at, sent_at and completed_at."""
    micros = [
        pc.cast(columns[name], pa.int64()) for name in ("created_at", "sent_at", "completed_at")
    ]
    return pc.cast(pc.max_element_wise(*micros, skip_nulls=True), TIMESTAMP)


def _failed(
    problems: _Problems, prior: Mapping[tuple[int, str], str], line_of: Callable[[int], int]
) -> Validated:
    found = list(problems.found)
    found += [(row, _FIELD_ORDER.get(name, -1), name, why) for (row, name), why in prior.items()]
    found.sort()
    first = tuple(RowProblem(line_of(row), name, why) for row, _, name, why in found[:MAX_PROBLEMS])
    return Validated(None, first, problems.count + len(prior))


def _column(raw: pa.Table, name: str, n: int) -> pa.Array:
    if name not in raw.column_names:
        return pa.nulls(n, pa.string())
    return raw.column(name)


def _required_text(raw: pa.Table, name: str, n: int, problems: _Problems) -> pa.Array:
    column = _convert(raw, name, n, pa.string(), problems, "must be a string")
    problems.add(name, pc.or_kleene(pc.is_null(column), pc.equal(column, "")), "is required", False)
    return pc.fill_null(column, "")


def _one_of(
    column: pa.Array,
    name: str,
    allowed: tuple[str, ...],
    problems: _Problems,
    case: Callable[[pa.Array], pa.Array] | None,
    pattern: str | None = None,
) -> pa.Array:
    """Check a low-cardinality column on its distinct values only; fix case if needed."""
    distinct = [v for v in pc.unique(column).to_pylist() if v]
    fold: Callable[[str], str] = str.lower if case is pc.utf8_lower else str.upper

    def ok(value: str) -> bool:
        return bool(re.fullmatch(pattern, value)) if pattern else value in allowed

    bad = [v for v in distinct if not ok(fold(v) if case else v)]
    if case is not None and any(not ok(v) for v in distinct if v not in bad):
        column = case(column)
    if bad:
        reason = f"must be one of {', '.join(allowed)}" if not pattern else allowed[0]
        problems.add(name, pc.is_in(column, value_set=pa.array(bad)), reason)
    return column


def _convert(
    raw: pa.Table, name: str, n: int, target: pa.DataType, problems: _Problems, reason: str
) -> pa.Array:
    """Cast a column to ``target``; cells that do not convert become problems (and nulls)."""
    column = _column(raw, name, n)
    if column.type == target:
        return column
    if pa.types.is_floating(column.type) and pa.types.is_decimal(target):
        column = pc.cast(column, pa.string())  # shortest round-trip text, never binary maths
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    bad = np.zeros(n, dtype=bool)
    pieces = []
    for start in range(0, n, _LOCATE_CHUNK):
        piece = column.slice(start, _LOCATE_CHUNK)
        if isinstance(piece, pa.ChunkedArray):
            piece = piece.combine_chunks()
        try:
            pieces.append(pc.cast(piece, target))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
        cells = []
        for offset in range(len(piece)):
            try:
                cells.append(pc.cast(piece.slice(offset, 1), target))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                bad[start + offset] = True
                cells.append(pa.nulls(1, target))
        pieces.append(pa.concat_arrays(cells))
    problems.add(name, pa.array(bad), reason)
    return pa.chunked_array(pieces, type=target)


def _tags(raw: pa.Table, n: int, problems: _Problems) -> pa.Array:
    """tags: a list of strings; text (CSV) is ``;``-joined; absent means no tags."""
    column = _column(raw, "tags", n)
    target = pa.list_(pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.cast(column, pa.string())
        split = pc.split_pattern(text, ";")
        column = pc.if_else(pc.equal(text, ""), pa.scalar([], target), split)
    elif pa.types.is_null(column.type):
        column = pa.nulls(n, target)
    elif column.type != target:
        try:
            column = pc.cast(column, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            problems.add("tags", pa.array(np.ones(n, dtype=bool)), "must be a list of strings")
            return pa.nulls(n, target)
    return pc.coalesce(column, pa.scalar([], target))


def repeated_rows(ids: pa.Array) -> pa.Array | None:
    """A mask of the rows whose id occurs more than once, or None when ids are unique."""
    if len(ids) < 2:
        return None
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return None
    return pc.is_in(ids, value_set=repeated)


def _same_identity(columns: dict[str, pa.Array], problems: _Problems) -> None:
    """Rows of one id in one batch must agree on account_id and created_at (api.md section 6)."""
    ids = columns["id"]
    n = len(ids)
    repeated = repeated_rows(ids)
    if repeated is None:
        return
    keyed = pa.table(
        {
            "id": ids,
            "account_id": columns["account_id"],
            "created_at": pc.cast(columns["created_at"], pa.int64()),
        }
    ).filter(repeated)
    spans = keyed.group_by("id", use_threads=False).aggregate(
        [("account_id", "min"), ("account_id", "max"), ("created_at", "min"), ("created_at", "max")]
    )
    mixed = pc.or_(
        pc.not_equal(spans.column("account_id_min"), spans.column("account_id_max")),
        pc.not_equal(spans.column("created_at_min"), spans.column("created_at_max")),
    )
    suspects = pc.filter(spans.column("id"), pc.fill_null(mixed, False))
    if len(suspects) == 0:
        return
    rows = pc.indices_nonzero(pc.is_in(ids, value_set=suspects)).to_pylist()
    keyed = pa.table({"account_id": columns["account_id"], "created_at": columns["created_at"]})
    first: dict[str, tuple[object, object]] = {}
    masks = {"account_id": np.zeros(n, dtype=bool), "created_at": np.zeros(n, dtype=bool)}
    for row in rows:  # only the rows of conflicting ids: few
        key = ids[row].as_py()
        values = (keyed.column("account_id")[row].as_py(), keyed.column("created_at")[row].as_py())
        seen = first.setdefault(key, values)
        masks["account_id"][row] = values[0] != seen[0]
        masks["created_at"][row] = values[1] is not None and values[1] != seen[1]
    for name, mask in masks.items():
        problems.add(
            name, pa.array(mask), "differs from an earlier row with the same id", show_value=False
        )
