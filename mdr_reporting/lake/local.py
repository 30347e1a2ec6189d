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
* Files hold LAKE_SCHEMA: the records plus their folded numbers (``cli_folded``,
  ``cld_folded``, domain/records.py), which merges write afresh, so
  ``compact()`` adds them to files written before they existed.
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
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mdr_reporting.domain.records import FOLDED_COLUMNS, RECORD_SCHEMA
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
from mdr_reporting.lake.build import (
    MAX_FILES_PER_DAY,
    ROW_GROUP_ROWS,
    check_part,
    latest_sorted,
    moved_rows,
    smallest_over_bound,
    split_days,
    write_parquet,
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
from mdr_reporting.owner_only import private_dir, private_file

__all__ = ["MAX_FILES_PER_DAY", "RETIRE_GRACE_SECONDS", "ROW_GROUP_ROWS", "LocalLake"]

RETIRE_GRACE_SECONDS = 600.0
WRITES_IN_FLIGHT = 3
_NO_VERSIONS = RECORD_SCHEMA.empty_table().select(INDEX_COLUMNS)


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
        private_dir(self.root / "data")  # records are private: 0700 whatever the umask
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

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        private_file(self.root / "_lock")
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
        """Merge every day with more than one file (or without folded numbers) into one;
        reclaim what nobody reads."""
        with self._lock, self._file_lock():
            manifest = read_manifest(self.root)
            before = sum(len(entries) for entries in manifest.days.values())
            days = [
                day
                for day, entries in manifest.days.items()
                if len(entries) > 1 or not self._folded(entries)
            ]
            for day in sorted(days):
                manifest = self._merge(manifest, day, list(manifest.days[day]))
            manifest = self._reclaim(manifest)
            after = sum(len(entries) for entries in manifest.days.values())
            return CompactResult(len(days), before, after)

    def _folded(self, entries: Sequence[FileEntry]) -> bool:
        """Whether every file holds the folded numbers (files from before them do not)."""
        wanted = set(FOLDED_COLUMNS.values())
        return all(wanted <= set(pq.read_schema(self.root / e.path).names) for e in entries)

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
        return smallest_over_bound(entries, self.max_files_per_day)

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
            private_dir(folder)
            fsync_dir(folder.parent)
        return folder / f"part-{version:012d}-{number:04d}-{secrets.token_hex(4)}.parquet"

    def _write_at(self, path: Path, table: pa.Table) -> FileEntry:
        private_file(path)  # 0600 from its first byte
        with path.open("r+b") as handle:
            write_parquet(table, handle)
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
        batch, origin, slices = split_days(batch)
        groups = []
        conflicts: list[tuple[int, str, str]] = []
        for day, start, end in slices:
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

    def _check(
        self, day: date, part: pa.Table, origin: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[int, str, str]], np.ndarray]:
        """Which rows of ``part`` are new versions, which change an id's identity, and
        which name an id ``day`` does not hold yet."""
        return check_part(self._known(day, part.column("id")), part, origin)

    def _moved(
        self, day: date, part: pa.Table, origin: np.ndarray, unseen: np.ndarray
    ) -> list[tuple[int, str, str]]:
        return moved_rows(day, part, origin, unseen, self._known)

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
    """The latest version of each id in ``paths`` (one day), laid out like any data file."""
    columns = list(RECORD_SCHEMA.names)  # files from before the folded numbers get them anew
    return latest_sorted([pq.read_table(path, columns=columns) for path in paths])
