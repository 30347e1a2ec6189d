"""One append to the S3 lake (lake/s3.py): stage uploads, then name them in one commit.

Rows are checked when staged against the day's keys this process last saw, and again
inside the commit (under the day's lock) against every file committed since.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import obstore
import pyarrow as pa
import pyarrow.compute as pc

from mdr_reporting.lake.base import AppendResult, LakeConflict, LakeWriter
from mdr_reporting.lake.build import check_part, moved_rows, smallest_over_bound, split_days
from mdr_reporting.lake.index import INDEX_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mdr_reporting.lake.s3 import S3Lake

__all__ = ["Row", "S3Writer"]

log = logging.getLogger("mdr.lake")


@dataclass(frozen=True)
class Row:
    """One live file of the manifest."""

    path: str
    day: date
    seq: int
    rows: int
    bytes: int


@dataclass
class _Staged:
    day: date
    key: str
    versions: pa.Table  # INDEX_COLUMNS of the file's rows, in file order
    origin: np.ndarray  # each row's number in the batch given to add()
    upload: Future[int]


class S3Writer(LakeWriter):
    """Stages uploads; the commit names them in one catalog transaction."""

    def __init__(self, lake: S3Lake) -> None:
        self.lake = lake
        self.seen: dict[date, list[str]] = {}  # the day's live keys when first checked
        self.staged: list[_Staged] = []
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mdr-lake-upload")
        self.uploaded: list[str] = []
        self.rows = 0
        self.done = False

    def _day_keys(self, day: date, fresh: bool = False) -> list[str]:
        """The day's live keys as last seen (queried when unknown or ``fresh``); ``seen``
        keeps the keys of every check, so the commit rechecks against any file newer."""
        lake = self.lake
        with lake._index_lock:
            keys = None if fresh else lake._keys.get(day)
        if keys is None:
            with lake.engine.begin() as db:
                keys = [r.path for r in lake._live(db, [day])[day]]
            with lake._index_lock:
                lake._keys[day] = keys
        earlier = self.seen.get(day)
        self.seen[day] = keys if earlier is None else [k for k in earlier if k in set(keys)]
        return keys

    def _known_ids(self, day: date, ids: pa.Array) -> pa.Table:
        """Stored versions of ``ids`` in ``day`` (a neighbouring day, for moved versions)."""
        known = self._known(day)
        return known.filter(pc.is_in(known.column("id"), value_set=ids))

    def _known(self, day: date) -> pa.Table:
        """Stored versions of ``day`` plus those staged earlier in this transaction."""
        try:
            known = self.lake._known(day, self._day_keys(day))
        except FileNotFoundError:  # another process merged and reclaimed what we last saw
            known = self.lake._known(day, self._day_keys(day, fresh=True))
        mine = [s.versions for s in self.staged if s.day == day]
        return pa.concat_tables([known.select(INDEX_COLUMNS), *mine]) if mine else known

    def add(self, batch: pa.Table) -> int:
        if self.done:
            raise RuntimeError("this lake writer is closed")
        batch, origin, slices = split_days(batch)
        groups = []
        conflicts: list[tuple[int, str, str]] = []
        for day, start, end in slices:
            part = batch.slice(start, end - start)
            fresh, bad, unseen = check_part(self._known(day), part, origin[start:end])
            conflicts += bad + moved_rows(day, part, origin[start:end], unseen, self._known_ids)
            if not fresh.all():
                part = part.filter(pa.array(fresh))
            groups.append((day, part, origin[start:end][fresh]))
        if conflicts:
            raise LakeConflict(sorted(conflicts))
        stored = 0
        for day, part, rows in groups:
            if part.num_rows == 0:
                continue
            key = self.lake._new_key(day)
            self.uploaded.append(key)
            upload = self.pool.submit(self.lake._upload, key, part)
            self.staged.append(_Staged(day, key, part.select(INDEX_COLUMNS), rows, upload))
            stored += part.num_rows
        self.rows += stored
        return stored

    def _recheck(self, db_rows: Sequence[Row], day: date) -> None:
        """Another process committed to ``day`` after our check: check again, inside the
        commit's lock; stale rows are dropped (the file rewritten), conflicts fail it."""
        known = self.lake._known(day, [r.path for r in db_rows])
        conflicts: list[tuple[int, str, str]] = []
        for number, staged in enumerate(self.staged):
            if staged.day != day:
                continue
            fresh, bad, _unseen = check_part(known, staged.versions, staged.origin)
            conflicts += bad
            if bad or fresh.all():
                continue
            table = self.lake._read_table(staged.key).filter(pa.array(fresh))
            key = self.lake._new_key(day)
            self.uploaded.append(key)
            done: Future[int] = Future()
            done.set_result(self.lake._upload(key, table) if table.num_rows else 0)
            self.rows -= staged.versions.num_rows - table.num_rows
            self.staged[number] = replace(
                staged,
                key=key,
                versions=staged.versions.filter(pa.array(fresh)),
                origin=staged.origin[fresh],
                upload=done,
            )
        if conflicts:
            raise LakeConflict(sorted(conflicts))
        self.staged = [s for s in self.staged if s.versions.num_rows]

    def commit(self) -> AppendResult:
        if self.done:
            raise RuntimeError("this lake writer is closed")
        for staged in self.staged:
            staged.upload.result()  # raises a failed upload
        self.pool.shutdown()
        lake = self.lake
        if not self.staged:
            self.done = True
            with lake.engine.begin() as db:
                return AppendResult(self.rows, lake._version(db))
        days = sorted({s.day for s in self.staged})
        merged: list[tuple[date, list[Row], Row]] = []
        finals: dict[date, list[str]] = {}  # each day's live keys after this commit
        try:
            # Files committed since the check are checked against before the lock (reading
            # their ids from S3 there), so inside it only the latest few remain.
            with lake.engine.begin() as db:
                live = lake._live(db, days)
            for day in days:
                keys = [r.path for r in live[day]]
                if set(keys) - set(self.seen.get(day, ())):
                    try:
                        self._recheck(live[day], day)
                    except FileNotFoundError:  # merged and reclaimed meanwhile: the check
                        continue  # inside the lock, where nothing is reclaimed, covers it
                self.seen[day] = keys
            with lake.engine.begin() as db:
                lake._lock_days(db, days)
                live = lake._live(db, days)
                for day in days:
                    if {r.path for r in live[day]} - set(self.seen.get(day, ())):
                        self._recheck(live[day], day)
                for day in sorted({s.day for s in self.staged}):
                    seq = lake._bump(db, day)
                    rows = [
                        Row(s.key, day, seq, s.versions.num_rows, s.upload.result())
                        for s in self.staged
                        if s.day == day
                    ]
                    lake._add_rows(db, rows)
                    named = [*live[day], *rows]
                    smallest = smallest_over_bound(named, lake.max_files_per_day)
                    finals[day] = [r.path for r in named if r not in smallest]
                    if smallest:
                        row = lake._merge(db, day, smallest, self.uploaded)
                        merged.append((day, smallest, row))
                        finals[day].append(row.path)
                version = lake._version(db)
        except BaseException:
            with lake._index_lock:
                for day in days:
                    lake._keys.pop(day, None)
            self.abort()
            raise
        self.done = True
        with lake._index_lock:
            lake._keys.update(finals)
            for staged in self.staged:
                lake._index.add(staged.day, lake.location.url(staged.key), staged.versions)
            for day, rows, row in merged:
                urls = [lake.location.url(r.path) for r in rows]
                lake._index.replace(day, urls, lake.location.url(row.path))
        if merged:
            lake._reclaim()
        try:
            lake.after_commit({day: len(keys) for day, keys in finals.items()})
        except Exception:  # the append is committed; the next commit or compact() merges
            log.warning("merging after an append failed", exc_info=True)
        return AppendResult(self.rows, version)

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        for staged in self.staged:
            with contextlib.suppress(Exception):  # the object is deleted below either way
                staged.upload.result()
        self.pool.shutdown()
        for key in self.uploaded:
            with contextlib.suppress(Exception):  # the sweep removes what is left
                obstore.delete(self.lake.store, key)
