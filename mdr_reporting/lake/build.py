"""Building the lake's Parquet files and checking batches, shared by the local and S3 lakes.

Everything here works on Arrow tables and byte sinks, never on where a file lives:
the one layout (one row per id, sorted by day, account and time, small row groups
with statistics) and the one set of ingest rules (api.md section 6) for every lake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mdr_reporting.domain.records import LAKE_SCHEMA, RECORD_SCHEMA, with_folded_numbers
from mdr_reporting.domain.validation import repeated_rows

__all__ = [
    "DICTIONARY_COLUMNS",
    "LAYOUT_KEY",
    "LAYOUT_VALUE",
    "MAX_FILES_PER_DAY",
    "ROW_GROUP_ROWS",
    "SORT_KEYS",
    "Sized",
    "check_part",
    "latest_sorted",
    "layout",
    "moved_rows",
    "smallest_over_bound",
    "split_days",
    "write_parquet",
]

MAX_FILES_PER_DAY = 16
ROW_GROUP_ROWS = 16_384
SORT_KEYS = [("account_id", "ascending"), ("created_at", "ascending")]  # as the metadata says
LAYOUT_KEY = b"mdr.layout"
LAYOUT_VALUE = b"unique id; sorted by account_id, created_at, id"
"""Key-value metadata of every data file the lake writes: each id at most once in the file,
rows sorted by (account_id, created_at, id), ids in byte order.  Engines skip work that
this makes unnecessary (one account's rows of a one-file day are already in report order);
files without it (written before it existed, or by anything else) get the general path."""
# Low-cardinality columns; dictionaries on ids, numbers and bodies cost time for nothing.
DICTIONARY_COLUMNS = [
    "account_id",
    "direction",
    "message_type",
    "status",
    "error_code",
    "carrier",
    "mcc",
    "mnc",
    "country_code",
    "connection_id",
    "profile_id",
    "tags",
    "currency",
]
_EPOCH = date(1970, 1, 1)
_DAY_MICROS = 86_400_000_000


class Sized(Protocol):
    """A stored file as the bound on files per day sees it."""

    @property
    def path(self) -> str: ...

    @property
    def rows(self) -> int: ...


def write_parquet(table: pa.Table, sink: Any) -> None:
    """One data file: zstd, dictionaries on small columns, sorted row groups with statistics.

    ``table`` is laid out by :func:`layout` (one row per id, in order), which the file's
    :data:`LAYOUT_KEY` metadata states."""
    metadata = {**(table.schema.metadata or {}), LAYOUT_KEY: LAYOUT_VALUE}
    pq.write_table(
        table.replace_schema_metadata(metadata),
        sink,
        row_group_size=ROW_GROUP_ROWS,
        compression="zstd",
        compression_level=1,
        use_dictionary=DICTIONARY_COLUMNS,
        sorting_columns=pq.SortingColumn.from_ordering(LAKE_SCHEMA, SORT_KEYS),
        write_page_index=True,
    )


def split_days(batch: pa.Table) -> tuple[pa.Table, np.ndarray, list[tuple[date, int, int]]]:
    """``batch`` laid out (winners only, sorted), the original row of each kept row, and the
    (day, start, end) slices of each UTC day."""
    batch = with_folded_numbers(batch)  # LAKE_SCHEMA: the records and their folded numbers
    origin = layout(batch)  # one gather: drops superseded rows and sorts
    batch, days = batch.take(pa.array(origin)), _day_numbers(batch)[origin]
    if len(days) == 0:  # a file of blank lines: no rows, no days (nothing to store)
        return batch, origin, []
    bounds = np.flatnonzero(np.diff(days)) + 1
    starts = np.concatenate([[0], bounds]).astype(int)
    ends = np.concatenate([bounds, [len(days)]]).astype(int)
    slices = [
        (_EPOCH + timedelta(days=int(days[start])), int(start), int(end))
        for start, end in zip(starts, ends, strict=True)
    ]
    return batch, origin, slices


def check_part(
    known: pa.Table, part: pa.Table, origin: np.ndarray
) -> tuple[np.ndarray, list[tuple[int, str, str]], np.ndarray]:
    """Which rows of ``part`` (one day) are new versions given the ``known`` versions (index
    columns), which change an id's identity (as (row in the batch, field, reason)), and
    which name an id the day does not hold yet."""
    known = known.filter(pc.is_in(known.column("id"), value_set=part.column("id")))
    if known.num_rows == 0:
        every = np.ones(part.num_rows, dtype=bool)
        return every, [], every
    latest = known.group_by("id", use_threads=False).aggregate(
        [("account_id", "min"), ("created_at", "min"), ("updated_at", "max")]
    )
    probe = part.select(["id", "account_id", "created_at", "updated_at"]).append_column(
        "_row", pa.array(np.arange(part.num_rows, dtype=np.int64))
    )
    joined = probe.join(latest, "id", use_threads=False)
    matched = joined.filter(pc.is_valid(joined.column("updated_at_max")))
    rows = matched.column("_row").to_numpy()
    conflicts = []
    for name, held in (("account_id", "account_id_min"), ("created_at", "created_at_min")):
        changed = pc.not_equal(matched.column(name), matched.column(held)).to_numpy(
            zero_copy_only=False
        )
        conflicts += [
            (int(origin[row]), name, "differs from the stored version of this id")
            for row in rows[changed]
        ]
    stale = pc.less_equal(matched.column("updated_at"), matched.column("updated_at_max"))
    fresh = np.ones(part.num_rows, dtype=bool)
    fresh[rows[stale.to_numpy(zero_copy_only=False)]] = False
    unseen = np.ones(part.num_rows, dtype=bool)
    unseen[rows] = False
    return fresh, conflicts, unseen


def moved_rows(
    day: date,
    part: pa.Table,
    origin: np.ndarray,
    unseen: np.ndarray,
    known: Callable[[date, pa.Array], pa.Table],
) -> list[tuple[int, str, str]]:
    """Rows new to ``day`` whose id the next or the previous UTC day already holds: a new
    version whose ``created_at`` moved it across midnight (api.md section 6 forbids it).
    ``known(other_day, ids)`` gives the stored versions of ``ids`` in another day. A move
    of more than one day is not looked for: that would read every day's ids."""
    rows = np.flatnonzero(unseen)
    if len(rows) == 0:
        return []
    ids = part.column("id").take(pa.array(rows))
    found: list[tuple[int, str, str]] = []
    for other in (day - timedelta(days=1), day + timedelta(days=1)):
        reason = f"differs from the stored version of this id ({other})"
        held = known(other, ids).column("id")
        if len(held) == 0:
            continue
        hit = pc.is_in(ids, value_set=held).to_numpy(zero_copy_only=False)
        found += [(int(origin[row]), "created_at", reason) for row in rows[hit]]
    return found


_T = TypeVar("_T", bound=Sized)


def smallest_over_bound(entries: Sequence[_T], max_files: int) -> list[_T]:
    """A day's smallest files when it is over the bound: merged, they leave the day
    ``max_files // 2`` files.  Small files merge often and big ones rarely."""
    if len(entries) <= max_files:
        return []
    take = len(entries) - max_files // 2 + 1
    return sorted(entries, key=lambda e: (e.rows, e.path))[:take]


def latest_sorted(tables: Iterator[pa.Table] | Sequence[pa.Table]) -> pa.Table:
    """The latest version of each id in ``tables`` (one day, in listing order), laid out
    like any data file.

    Vectorised in-process (no query engine): merges run inside appends, often on
    small files, where starting a DuckDB query would cost more than the work.
    Files written before the lake stored folded numbers get them here.
    """
    table = pa.concat_tables([t.select(RECORD_SCHEMA.names).cast(RECORD_SCHEMA) for t in tables])
    return with_folded_numbers(table.take(pa.array(layout(table))))


def layout(batch: pa.Table) -> np.ndarray:
    """Row numbers to keep, in file order: one row per id (the latest ``updated_at``, the
    first on a tie), sorted by (day, account_id, created_at, id) with numpy on integer keys
    (ids are ranked only where account and time tie, which is rare)."""
    accounts = batch.column("account_id")
    names = sorted(a for a in pc.unique(accounts).to_pylist())
    rank = pc.index_in(accounts, value_set=pa.array(names, pa.string())).to_numpy(
        zero_copy_only=False
    )
    created = pc.cast(batch.column("created_at"), pa.int64()).to_numpy()
    kept = _winners(batch)
    if kept is not None:
        rank, created = rank[kept], created[kept]
    order: np.ndarray = np.lexsort((created, rank, np.floor_divide(created, _DAY_MICROS)))
    ties = _ties(rank[order], created[order])
    if ties is not None:
        rows = order[ties] if kept is None else kept[order[ties]]
        by_id = pc.sort_indices(batch.column("id").take(pa.array(rows))).to_numpy()
        id_rank = np.zeros(len(order), dtype=np.int64)
        id_rank[order[ties[by_id]]] = np.arange(1, len(by_id) + 1)
        order = np.lexsort((id_rank, created, rank, np.floor_divide(created, _DAY_MICROS)))
    return order if kept is None else kept[order]


def _ties(rank: np.ndarray, created: np.ndarray) -> np.ndarray | None:
    """Positions (in sorted order) of rows sharing account and ``created_at`` with a
    neighbour, or None when there are none."""
    same = (rank[1:] == rank[:-1]) & (created[1:] == created[:-1])
    if not same.any():
        return None
    tied = np.zeros(len(rank), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    found: np.ndarray = np.flatnonzero(tied)
    return found


def _day_numbers(batch: pa.Table) -> np.ndarray:
    micros = pc.cast(batch.column("created_at"), pa.int64()).to_numpy()
    days: np.ndarray = np.floor_divide(micros, _DAY_MICROS)
    return days


def _winners(batch: pa.Table) -> np.ndarray | None:
    """Row numbers of one row per id (the latest updated_at, the first such row on a tie),
    or None when every id is there once."""
    repeated = repeated_rows(batch.column("id"))
    if repeated is None:
        return None
    candidates = pc.indices_nonzero(repeated)
    subset = batch.select(["id", "updated_at"]).take(candidates)
    order = pc.sort_indices(
        subset, sort_keys=[("id", "ascending"), ("updated_at", "descending")]
    )  # stable: on a tie the earlier row comes first
    sorted_ids = subset.column("id").take(order)
    first = np.ones(len(order), dtype=bool)
    first[1:] = pc.not_equal(sorted_ids.slice(1), sorted_ids.slice(0, len(order) - 1)).to_numpy(
        zero_copy_only=False
    )
    losers = candidates.to_numpy()[order.to_numpy()[~first]]
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[losers] = False
    kept: np.ndarray = np.flatnonzero(keep)
    return kept
