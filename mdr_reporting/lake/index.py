"""What the lake already holds per day, for the ingest-time checks of api.md section 6.

A new version must keep ``account_id`` and ``created_at``, and only a later
``updated_at`` changes anything.  Checking that means looking up the batch's ids in
their day; reading a day's id column for every small batch would cost more than
the append, so the (id, account, created, updated) columns of recently touched
days stay in memory, bounded in bytes (a quarter of the machine's memory by
default, not a row count: one day of a large platform holds 30M+ rows) and
evicted least recently used; the day in use always stays, whatever its size.
An entry knows which files it covers, so appends by another process (seen as
new files in the manifest) are read incrementally.  The day before and the day
after are looked up too, for versions whose ``created_at`` moved across midnight.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from mdr_reporting.domain.records import RECORD_SCHEMA

__all__ = ["INDEX_COLUMNS", "DayIndex", "default_budget"]

INDEX_COLUMNS = ["id", "account_id", "created_at", "updated_at"]
MIN_BUDGET_BYTES = 256 * 1024 * 1024


def default_budget() -> int:
    """A quarter of physical memory (at least 256 MiB): room for a few 30M-row days."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * MIN_BUDGET_BYTES
    return max(MIN_BUDGET_BYTES, total // 4)


_EMPTY = RECORD_SCHEMA.empty_table().select(INDEX_COLUMNS)


@dataclass
class _Entry:
    files: frozenset[str]
    table: pa.Table


class DayIndex:
    """LRU map of day -> known versions (a table of INDEX_COLUMNS). Not thread-safe: the
    lake calls it under its write lock."""

    def __init__(
        self,
        max_bytes: int | None = None,
        read: Callable[[Sequence[str]], pa.Table] | None = None,
    ) -> None:
        self.max_bytes = default_budget() if max_bytes is None else max_bytes
        self._read = read or _read  # the INDEX_COLUMNS of some files (an S3 lake downloads)
        self._days: OrderedDict[date, _Entry] = OrderedDict()

    def get(
        self, day: date, files: Sequence[str], before_read: Callable[[], object] | None = None
    ) -> pa.Table:
        """The versions held by ``files`` (paths or URLs), which make up ``day``.

        ``before_read`` runs before any file is read (to wait for writes in flight)."""
        wanted = frozenset(files)
        entry = self._days.get(day)
        if entry is None or not entry.files <= wanted:
            entry = _Entry(frozenset(), _empty())
        missing = sorted(wanted - entry.files)
        if missing:
            if before_read is not None:
                before_read()
            entry = _Entry(wanted, _concat(entry.table, self._read(missing)))
        self._days[day] = entry
        self._days.move_to_end(day)
        self._evict()
        return entry.table

    def add(self, day: date, path: str, versions: pa.Table) -> None:
        """Record a file this process just wrote, so it is never read back."""
        entry = self._days.get(day)
        if entry is None:
            return  # not cached: a later get() reads the file
        self._days[day] = _Entry(entry.files | {path}, _concat(entry.table, versions))

    def replace(self, day: date, removed: Sequence[str], added: str) -> None:
        """Compaction swapped files without changing which (id, account, created) exist."""
        entry = self._days.get(day)
        if entry is not None and set(removed) <= entry.files:
            self._days[day] = _Entry((entry.files - set(removed)) | {added}, entry.table)
        else:
            self._days.pop(day, None)

    def forget(self, day: date) -> None:
        self._days.pop(day, None)

    def _evict(self) -> None:
        total = sum(entry.table.nbytes for entry in self._days.values())
        while total > self.max_bytes and len(self._days) > 1:
            _, entry = self._days.popitem(last=False)
            total -= entry.table.nbytes

    @property
    def cached_rows(self) -> int:
        return sum(entry.table.num_rows for entry in self._days.values())


def _empty() -> pa.Table:
    return _EMPTY


def _read(files: Sequence[str]) -> pa.Table:
    return pq.ParquetDataset(list(files)).read(columns=INDEX_COLUMNS)


def _concat(left: pa.Table, right: pa.Table) -> pa.Table:
    if left.num_rows == 0:
        return right.select(INDEX_COLUMNS)
    return pa.concat_tables([left, right.select(INDEX_COLUMNS)])
