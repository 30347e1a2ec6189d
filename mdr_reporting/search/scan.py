"""Reading one UTC day of the lake for a few accounts: row-group skipping, latest versions.

Search and usage both ask the same of a day: the latest version of every message of
some accounts created in a window, with a few columns.  The lake's files are sorted
by (account_id, created_at) in small row groups with statistics, so the footers say
which row groups can hold the accounts and the window; only those are read.

Every version of a message lives in its ``created_at`` day and keeps its
``account_id`` and ``created_at`` (api.md section 6), so skipping by account and
time never hides a newer version of a row that is read.  One file never holds two
versions of an id; across a day's files the latest ``updated_at`` wins, and on a tie
the file listed first (the one ingested first), as the report engines decide.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mdr_reporting.domain.records import (
    FOLDED_COLUMNS,
    LAKE_SCHEMA,
    RECORD_COLUMNS,
    RECORD_SCHEMA,
    fold_numbers,
)

__all__ = ["DayScan", "Window", "read_rows", "scan_day"]

FILE = "_file"
ROW = "_row"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """``start <= created_at < end`` (UTC); ``None`` leaves that side open."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class DayScan:
    """The latest versions of one day's matching rows: ``columns`` plus ``_file`` (the index
    in the day's file list) and ``_row`` (the row number in that file)."""

    table: pa.Table
    row_groups_read: int
    row_groups_total: int


def _micros(value: object) -> int | None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - _EPOCH) // datetime.resolution
    return None


def _groups(
    meta: pq.FileMetaData, accounts: Collection[str] | None, low: int | None, high: int | None
) -> list[int]:
    """Row groups whose statistics allow a row of ``accounts`` with created_at in
    [low, high) (epoch microseconds); a group without statistics is always read."""
    leaves = [meta.schema.column(i).path for i in range(meta.num_columns)]
    account_at, created_at = leaves.index("account_id"), leaves.index("created_at")
    wanted = sorted(accounts) if accounts is not None else None
    kept = []
    for index in range(meta.num_row_groups):
        group = meta.row_group(index)
        if group.num_rows == 0:
            continue
        stats = group.column(account_at).statistics
        if wanted is not None and stats is not None and stats.has_min_max:
            first, last = stats.min, stats.max
            if isinstance(first, bytes):
                first, last = first.decode("utf-8", "replace"), last.decode("utf-8", "replace")
            if not any(first <= account <= last for account in wanted):
                continue
        stats = group.column(created_at).statistics
        if stats is not None and stats.has_min_max:
            first_us, last_us = _micros(stats.min), _micros(stats.max)
            if low is not None and last_us is not None and last_us < low:
                continue
            if high is not None and first_us is not None and first_us >= high:
                continue
        kept.append(index)
    return kept


def _read(path: str, groups: list[int], columns: Sequence[str], meta: pq.FileMetaData) -> pa.Table:
    """``columns`` of ``groups`` with each row's number in the file; folded numbers are
    computed for files written before the lake stored them."""
    handle = pq.ParquetFile(path, metadata=meta)
    present = set(meta.schema.to_arrow_schema().names)
    wanted = [c for c in columns if c in present]
    missing = [c for c in columns if c not in present]
    for name in missing:
        source = {folded: number for number, folded in FOLDED_COLUMNS.items()}.get(name)
        if source is not None and source not in wanted:
            wanted.append(source)
    table = handle.read_row_groups(groups, columns=wanted, use_threads=False)
    for name in missing:
        source = {folded: number for number, folded in FOLDED_COLUMNS.items()}.get(name)
        if source is None:
            raise ValueError(f"lake file without column {name!r}")
        table = table.append_column(name, fold_numbers(table.column(source)))
    starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    rows = np.concatenate(
        [np.arange(starts[g], starts[g + 1], dtype=np.int64) for g in groups]
        or [np.empty(0, np.int64)]
    )
    table = table.select(list(columns))
    table = table.cast(pa.schema([LAKE_SCHEMA.field(name) for name in columns]))
    return table.append_column(ROW, pa.array(rows))


def scan_day(
    files: Sequence[str],
    accounts: Collection[str] | None,
    window: Window,
    columns: Sequence[str],
) -> DayScan:
    """The latest version of each message of ``accounts`` (None: every account) created in
    ``window`` among one day's ``files``, with ``columns`` (``id``, ``account_id``,
    ``created_at`` and ``updated_at`` are always read)."""
    needed = list(dict.fromkeys(["id", "account_id", "created_at", "updated_at", *columns]))
    low = _micros(window.start) if window.start is not None else None
    high = _micros(window.end) if window.end is not None else None
    parts: list[pa.Table] = []
    read = total = 0
    for index, path in enumerate(files):
        meta = pq.read_metadata(path)
        total += meta.num_row_groups
        groups = _groups(meta, accounts, low, high)
        if not groups:
            continue
        read += len(groups)
        table = _read(path, groups, needed, meta)
        parts.append(table.append_column(FILE, pa.array(np.full(table.num_rows, index, np.int32))))
    if not parts:
        return DayScan(_empty(needed), read, total)
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    mask = None
    if accounts is not None:
        mask = pc.is_in(table.column("account_id"), value_set=pa.array(sorted(accounts)))
    created = table.column("created_at")
    for bound, compare in ((window.start, pc.greater_equal), (window.end, pc.less)):
        if bound is not None:
            test = compare(created, pa.scalar(bound, created.type))
            mask = test if mask is None else pc.and_(mask, test)
    if mask is not None:
        table = table.filter(mask)
    if len(parts) > 1:
        table = _latest(table)
    return DayScan(table, read, total)


def _latest(table: pa.Table) -> pa.Table:
    """One row per id: the latest ``updated_at``, then the file listed first (the earlier
    version of a tie), then the earlier row."""
    if table.num_rows == 0 or pc.count_distinct(table.column("id")).as_py() == table.num_rows:
        return table
    order = pc.sort_indices(
        table.select(["id", "updated_at", FILE, ROW]),
        sort_keys=[
            ("id", "ascending"),
            ("updated_at", "descending"),
            (FILE, "ascending"),
            (ROW, "ascending"),
        ],
    )
    ids = table.column("id").take(order)
    first = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        first[1:] = pc.not_equal(ids.slice(1), ids.slice(0, len(order) - 1)).to_numpy(
            zero_copy_only=False
        )
    return table.take(pc.array_take(order, pa.array(np.flatnonzero(first))))


def _empty(columns: Sequence[str]) -> pa.Table:
    fields = [LAKE_SCHEMA.field(name) for name in columns]
    schema = pa.schema([*fields, pa.field(ROW, pa.int64()), pa.field(FILE, pa.int32())])
    return schema.empty_table()


def read_rows(files: Sequence[str], picks: pa.Table, columns: Sequence[str]) -> pa.Table:
    """The record ``columns`` of the rows ``picks`` names (``_file``, ``_row``), in
    ``picks`` order, reading only the row groups that hold them."""
    wanted = [c for c in columns if c in RECORD_COLUMNS]
    if picks.num_rows == 0:
        return _empty(wanted).select(wanted)
    file_of = picks.column(FILE).to_numpy()
    row_of = picks.column(ROW).to_numpy()
    pieces: list[pa.Table] = []
    positions: list[np.ndarray] = []
    for index in sorted(set(file_of.tolist())):
        here = np.flatnonzero(file_of == index)
        meta = pq.read_metadata(files[index])
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        starts = np.cumsum([0, *sizes])
        rows = row_of[here]
        groups = sorted(set(np.searchsorted(starts, rows, side="right").tolist()))
        groups = [g - 1 for g in groups]
        handle = pq.ParquetFile(files[index], metadata=meta)
        table = handle.read_row_groups(groups, columns=wanted, use_threads=False)
        # Row numbers of the read groups, back to back: where each wanted row landed.
        offsets = np.concatenate([[0], np.cumsum([sizes[g] for g in groups])])
        group_of = np.searchsorted(starts, rows, side="right") - 1
        local = offsets[np.searchsorted(groups, group_of)] + (rows - starts[group_of])
        table = table.cast(pa.schema([RECORD_SCHEMA.field(name) for name in wanted]))
        pieces.append(table.take(pa.array(local)))
        positions.append(here)
    table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    back = np.argsort(np.concatenate(positions), kind="stable")
    return table.take(pa.array(back))
