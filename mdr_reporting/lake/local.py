"""The lake on a local (or shared POSIX) disk: plain Parquet plus an atomic manifest.

Layout under the root folder::

    _manifest.json                  which files make up each day (manifest.py)
    _lock                           flock'd by the one writer at a time
    data/2024-02-22/part-<version>-<n>-<token>.parquet

Why plain Parquet and not Delta Lake: every engine (DuckDB, Spark, Trino) reads
a list of Parquet files, a snapshot *is* such a list, and the manifest gives the
one thing a table format would add here (atomic, ordered commits) in ~100 lines
that also carry over to S3 (conditional put of the manifest).

Rules (api.md section 6, architecture.md "Lake"):

* An append writes its files, fsyncs them and their folders, then commits a new
  manifest (temp, fsync, rename, fsync): atomic and durable before it returns.
* Appends are serialised by a thread lock and an ``flock`` on ``_lock``, and all
  file writing happens under it, so any unnamed data file is a crash leftover.
* Only winners are stored: within a batch the latest ``updated_at`` of each id,
  and a row whose id the day already holds with an equal or later ``updated_at``
  is dropped (a re-sent batch stores nothing).  A row that changes ``account_id``
  or ``created_at`` of a stored id raises :class:`LakeConflict`.
* Each file is sorted by (account_id, created_at) in row groups of
  :data:`ROW_GROUP_ROWS`, so min/max statistics let a reader skip other accounts.
* Files per day are bounded by :data:`MAX_FILES_PER_DAY` (16) in every manifest:
  when an append would take a day past it, the smallest files of that day are
  merged (latest versions only) down to ``MAX_FILES_PER_DAY // 2`` files *before*
  the commit, in the same manifest version; ``compact()`` merges every day into
  one file.  Small files merge often and big ones rarely (size-tiered), so a
  stream of small batches is not rewritten once per batch.
* Replaced files are retired, not deleted, while a snapshot of this process may
  still read them and for :data:`RETIRE_GRACE_SECONDS` (readers in other
  processes).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mdr_reporting.domain.records import RECORD_SCHEMA
from mdr_reporting.domain.validation import repeated_rows
from mdr_reporting.lake.base import (
    AppendResult,
    CompactResult,
    DayStats,
    Lake,
    LakeConflict,
    LakeStats,
    LakeWriter,
    Snapshot,
)
from mdr_reporting.lake.index import INDEX_COLUMNS, DayIndex
from mdr_reporting.lake.manifest import (
    FileEntry,
    Manifest,
    Retired,
    fsync_dir,
    read_manifest,
    write_manifest,
)

__all__ = ["MAX_FILES_PER_DAY", "RETIRE_GRACE_SECONDS", "ROW_GROUP_ROWS", "LocalLake"]

MAX_FILES_PER_DAY = 16
ROW_GROUP_ROWS = 16_384
RETIRE_GRACE_SECONDS = 600.0
SORT_KEYS = [("account_id", "ascending"), ("created_at", "ascending")]  # as the metadata says
WRITES_IN_FLIGHT = 3
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
_NO_VERSIONS = RECORD_SCHEMA.empty_table().select(INDEX_COLUMNS)
_DAY_MICROS = 86_400_000_000


class LocalLake(Lake):
    """A lake rooted at a folder; safe for many threads and many processes."""

    def __init__(
        self,
        root: str | Path,
        *,
        max_files_per_day: int = MAX_FILES_PER_DAY,
        retire_grace_seconds: float = RETIRE_GRACE_SECONDS,
    ) -> None:
        self.root = Path(root).resolve()
        self.max_files_per_day = max(2, max_files_per_day)
        self.retire_grace_seconds = retire_grace_seconds
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._held: Counter[int] = Counter()
        self._held_lock = threading.Lock()
        self._index = DayIndex()

    # -- writing ------------------------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[LakeWriter]:
        with self._lock, self._file_lock():
            writer = _LocalWriter(self, read_manifest(self.root))
            try:
                yield writer
            except BaseException:
                writer.abort()
                raise
            writer.abort()  # a no-op after commit

    def append(self, batch: pa.Table) -> AppendResult:
        with self.writer() as writer:
            writer.add(batch)
            return writer.commit()

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        with (self.root / "_lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- reading ------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._held_lock:  # read and register as one step (see _reclaim)
            manifest = read_manifest(self.root)
            self._held[manifest.version] += 1
        return Snapshot(
            manifest.version,
            {
                day: tuple(str(self.root / entry.path) for entry in entries)
                for day, entries in sorted(manifest.days.items())
            },
        )

    def release(self, snapshot: Snapshot) -> None:
        with self._held_lock:
            self._held[snapshot.version] -= 1
            if self._held[snapshot.version] <= 0:
                del self._held[snapshot.version]

    def stats(self) -> LakeStats:
        manifest = read_manifest(self.root)
        return LakeStats(
            manifest.version,
            tuple(
                DayStats(
                    day, len(entries), sum(e.rows for e in entries), sum(e.bytes for e in entries)
                )
                for day, entries in sorted(manifest.days.items())
            ),
        )

    # -- maintenance --------------------------------------------------------------------

    def compact(self) -> CompactResult:
        """Merge every day with more than one file into one; reclaim what nobody reads."""
        with self._lock, self._file_lock():
            manifest = read_manifest(self.root)
            before = sum(len(entries) for entries in manifest.days.values())
            days = [day for day, entries in manifest.days.items() if len(entries) > 1]
            for day in sorted(days):
                manifest = self._merge(manifest, day, list(manifest.days[day]))
            manifest = self._reclaim(manifest)
            after = sum(len(entries) for entries in manifest.days.values())
            return CompactResult(len(days), before, after)

    def _merge(self, manifest: Manifest, day: date, entries: list[FileEntry]) -> Manifest:
        """Replace ``entries`` of ``day`` by one file with the latest version of each id."""
        version = manifest.version + 1
        days = dict(manifest.days)
        retired = self._bound_day(days, day, entries, version, 0)
        new = Manifest(version, days, (*manifest.retired, *retired))
        write_manifest(self.root, new)
        return new

    def _bound_day(
        self,
        days: dict[date, tuple[FileEntry, ...]],
        day: date,
        entries: Sequence[FileEntry],
        version: int,
        number: int,
    ) -> list[Retired]:
        """Write one file with the latest version of each id in ``entries`` and put it in
        their place in ``days`` (not yet committed); returns them as retired."""
        paths = [str(self.root / entry.path) for entry in entries]
        merged = self._write_file(day, version, number, _latest_sorted(paths))
        fsync_dir(self.root / "data" / day.isoformat())
        days[day] = (*(e for e in days[day] if e not in entries), merged)
        self._index.replace(day, paths, str(self.root / merged.path))
        now = time.time()
        return [Retired(e.path, version, now) for e in entries]

    def _smallest_over_bound(self, entries: Sequence[FileEntry]) -> list[FileEntry]:
        """A day's smallest files when it is over the bound: merged, they leave the day
        ``max_files_per_day // 2`` files."""
        if len(entries) <= self.max_files_per_day:
            return []
        take = len(entries) - self.max_files_per_day // 2 + 1
        return sorted(entries, key=lambda e: (e.rows, e.path))[:take]

    def _reclaim(self, manifest: Manifest) -> Manifest:
        """Delete retired files no reader may hold, and leftovers of crashed appends."""
        now = time.time()
        keep: list[Retired] = []
        with self._held_lock:  # snapshot() cannot register an older version meanwhile
            oldest_held = min(self._held, default=None)
            for entry in manifest.retired:
                in_use = oldest_held is not None and oldest_held < entry.version
                if in_use or now - entry.at < self.retire_grace_seconds:
                    keep.append(entry)
                else:
                    (self.root / entry.path).unlink(missing_ok=True)
        named = {e.path for entries in manifest.days.values() for e in entries}
        named |= {e.path for e in keep}
        for path in (self.root / "data").glob("*/*.parquet"):
            if str(path.relative_to(self.root)) not in named:
                path.unlink()  # written under the lock by an append that never committed
        if len(keep) != len(manifest.retired):
            manifest = Manifest(manifest.version + 1, manifest.days, tuple(keep))
            write_manifest(self.root, manifest)
        return manifest

    def _write_file(self, day: date, version: int, number: int, table: pa.Table) -> FileEntry:
        """Write one sorted Parquet file and fsync it; the caller fsyncs its folder."""
        return self._write_at(self._new_path(day, version, number), table)

    def _new_path(self, day: date, version: int, number: int) -> Path:
        folder = self.root / "data" / day.isoformat()
        if not folder.exists():
            folder.mkdir(parents=True)
            fsync_dir(folder.parent)
        return folder / f"part-{version:012d}-{number:04d}-{secrets.token_hex(4)}.parquet"

    def _write_at(self, path: Path, table: pa.Table) -> FileEntry:
        with path.open("wb") as handle:
            pq.write_table(
                table,
                handle,
                row_group_size=ROW_GROUP_ROWS,
                compression="zstd",
                compression_level=1,
                use_dictionary=DICTIONARY_COLUMNS,
                sorting_columns=pq.SortingColumn.from_ordering(RECORD_SCHEMA, SORT_KEYS),
                write_page_index=True,
            )
            handle.flush()
            os.fsync(handle.fileno())
        return FileEntry(str(path.relative_to(self.root)), table.num_rows, path.stat().st_size)


@dataclass
class _Pending:
    day: date
    path: Path
    write: Future[FileEntry]


class _LocalWriter(LakeWriter):
    """One open transaction; the lake's locks are held for its whole life."""

    def __init__(self, lake: LocalLake, manifest: Manifest) -> None:
        self.lake = lake
        self.manifest = manifest
        self.version = manifest.version + 1
        self.pending: list[_Pending] = []
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mdr-lake-write")
        self.rows = 0
        self.done = False

    def add(self, batch: pa.Table) -> int:
        if self.done:
            raise RuntimeError("this lake writer is closed")
        batch = batch.select(RECORD_SCHEMA.names).cast(RECORD_SCHEMA)
        origin = _layout(batch)  # one gather: drops superseded rows and sorts
        batch, days = batch.take(pa.array(origin)), _day_numbers(batch)[origin]
        bounds = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate([[0], bounds]).astype(int)
        ends = np.concatenate([bounds, [len(days)]]).astype(int)
        groups = []
        conflicts: list[tuple[int, str, str]] = []
        for start, end in zip(starts, ends, strict=True):
            day = _EPOCH + timedelta(days=int(days[start]))
            part = batch.slice(start, end - start)
            fresh, bad, unseen = self._check(day, part, origin[start:end])
            conflicts += bad + self._moved(day, part, origin[start:end], unseen)
            groups.append((day, part if fresh.all() else part.filter(pa.array(fresh))))
        if conflicts:
            raise LakeConflict(sorted(conflicts))
        stored = 0
        for day, part in groups:
            if part.num_rows == 0:
                continue
            path = self.lake._new_path(day, self.version, len(self.pending))
            self._throttle()
            write = self.pool.submit(self.lake._write_at, path, part)
            self.pending.append(_Pending(day, path, write))
            self.lake._index.add(day, str(path), part.select(INDEX_COLUMNS))
            stored += part.num_rows
        self.rows += stored
        return stored

    def _throttle(self) -> None:
        """Bound the memory of writes in flight: wait for all but the last few."""
        running = [p.write for p in self.pending if not p.write.done()]
        if len(running) >= WRITES_IN_FLIGHT:
            wait(running[: len(running) - WRITES_IN_FLIGHT + 1])

    def _known(self, day: date, ids: pa.Array) -> pa.Table:
        """The stored versions (INDEX_COLUMNS) of ``ids`` in ``day``, this transaction's too."""
        files = [str(self.lake.root / e.path) for e in self.manifest.days.get(day, ())]
        mine = [p for p in self.pending if p.day == day]
        files += [str(p.path) for p in mine]
        if not files:
            return _NO_VERSIONS
        known = self.lake._index.get(day, files, before_read=lambda: wait([p.write for p in mine]))
        return known.filter(pc.is_in(known.column("id"), value_set=ids))

    def _moved(
        self, day: date, part: pa.Table, origin: np.ndarray, unseen: np.ndarray
    ) -> list[tuple[int, str, str]]:
        """Rows new to ``day`` whose id the next or the previous UTC day already holds: a new
        version whose ``created_at`` moved it across midnight (api.md section 6 forbids it).
        A move of more than one day is not looked for: that would read every day's ids."""
        rows = np.flatnonzero(unseen)
        if len(rows) == 0:
            return []
        ids = part.column("id").take(pa.array(rows))
        found: list[tuple[int, str, str]] = []
        for other in (day - timedelta(days=1), day + timedelta(days=1)):
            held = self._known(other, ids).column("id")
            if len(held) == 0:
                continue
            hit = pc.is_in(ids, value_set=held).to_numpy(zero_copy_only=False)
            found += [
                (
                    int(origin[row]),
                    "created_at",
                    f"differs from the stored version of this id ({other})",
                )
                for row in rows[hit]
            ]
        return found

    def _check(
        self, day: date, part: pa.Table, origin: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[int, str, str]], np.ndarray]:
        """Which rows of ``part`` are new versions, which change an id's identity, and
        which name an id ``day`` does not hold yet."""
        known = self._known(day, part.column("id"))
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

    def commit(self) -> AppendResult:
        if self.done:
            raise RuntimeError("this lake writer is closed")
        entries = [(p.day, p.write.result()) for p in self.pending]  # raises a failed write
        self.done = True
        self.pool.shutdown()
        if not entries:
            return AppendResult(self.rows, self.manifest.version)
        root = self.lake.root
        touched = sorted({day for day, _ in entries})
        for day in touched:
            fsync_dir(root / "data" / day.isoformat())
        days = dict(self.manifest.days)
        for day, entry in entries:
            days[day] = (*days.get(day, ()), entry)
        retired: list[Retired] = []
        for number, day in enumerate(touched, start=len(entries)):
            # Merge before committing, so no reader ever sees more than the bound.
            smallest = self.lake._smallest_over_bound(days[day])
            if smallest:
                retired += self.lake._bound_day(days, day, smallest, self.version, number)
        manifest = Manifest(self.version, days, (*self.manifest.retired, *retired))
        try:
            write_manifest(root, manifest)
        except BaseException:
            for day in touched:  # the index saw rows that never became visible
                self.lake._index.forget(day)
            raise
        if retired:
            self.lake._reclaim(manifest)
        return AppendResult(self.rows, manifest.version)

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        wait([p.write for p in self.pending])
        self.pool.shutdown()
        for pending in self.pending:
            self.lake._index.forget(pending.day)
            pending.path.unlink(missing_ok=True)


def _latest_sorted(paths: Sequence[str]) -> pa.Table:
    """The latest version of each id in ``paths`` (one day), laid out like any data file.

    Vectorised in-process (no query engine): merges run inside appends, often on
    small files, where starting a DuckDB query would cost more than the work.
    """
    table = pa.concat_tables([pq.read_table(path, schema=RECORD_SCHEMA) for path in paths])
    return table.take(pa.array(_layout(table)))


def _layout(batch: pa.Table) -> np.ndarray:
    """Row numbers to keep, in file order: one row per id (the latest ``updated_at``, the
    first on a tie), sorted by (day, account_id, created_at) with numpy on integer keys."""
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
    return order if kept is None else kept[order]


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
