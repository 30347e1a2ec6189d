"""The lake on S3: the local lake's layout and rules, with the manifest in the catalog.

Layout under ``s3://bucket/prefix``::

    data/2024-02-22/part-<unix ms>-<token>.parquet

The manifest is three catalog tables (catalog/schema.py): ``lake_files`` (the files of
each day, in listing order, and which are retired), ``lake_days`` (a version counter
per day) and ``lake_leases`` (snapshots that readers in any process hold).  On
PostgreSQL several API processes on several machines append at once: a prototype
measured 238-285 commits/s this way against 21-31 with conditional writes of a
manifest object.  A SQLite catalog works too (one machine: its write lock serialises
the commits).

Rules, as on the local lake (lake/local.py):

* An append writes and uploads its files first, then commits them in one catalog
  transaction that holds a per-day advisory lock: atomic (a reader sees the batch
  whole or not at all) and durable when it returns.
* Rows are checked against what the day holds when they are staged, and checked again
  inside the commit against files another process committed meanwhile: a row that
  became stale is dropped (its file rewritten), a row that changes an id's identity
  fails the commit with :class:`LakeConflict`.  Nothing is lost when two commit at once.
* The commit itself is short: the files are uploaded and checked before it, and the
  transaction takes the day's lock, bumps its version and adds the file rows.  Merges
  run after it, outside that lock (:meth:`S3Lake.merge_after_commit`: one merger per
  day, the smallest files once a day holds more than 3/4 of the bound), and retire what
  they replace in a transaction of their own.  Files per day stay within
  :data:`MAX_FILES_PER_DAY` in every version all the same: a commit that would pass the
  bound (merges fell behind) merges inside it.  ``compact()`` merges each day into one
  file.
* A replaced file is retired: deleted once no lease taken before (its retirement plus
  ``retire_grace_seconds``, which covers transaction time and clock skew) is live.
* Objects that no row names (an append that died after its upload) are swept by
  ``compact()`` once older than ``sweep_age_seconds``.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import obstore
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from mdr_reporting.catalog.schema import lake_days, lake_files, lake_leases
from mdr_reporting.catalog.store import make_engine
from mdr_reporting.lake.base import (
    CompactResult,
    DayStats,
    Lake,
    LakeStats,
    LakeWriter,
    Snapshot,
)
from mdr_reporting.lake.build import (
    MAX_FILES_PER_DAY,
    latest_sorted,
    smallest_over_bound,
    write_parquet,
)
from mdr_reporting.lake.index import INDEX_COLUMNS, DayIndex
from mdr_reporting.lake.s3_writer import Row, S3Writer
from mdr_reporting.objectstore import S3Location, S3Reader, check_reachable, connect

__all__ = ["COPY_BUDGET_BYTES", "S3Lake"]

COPY_BUDGET_BYTES = 2 * 1024**3  # day copies on local disk at once, per process
LEASE_SECONDS = 6 * 3600.0  # a crashed reader's lease lapses after this
RETIRE_GRACE_SECONDS = 60.0
SWEEP_AGE_SECONDS = 3600.0
DOWNLOADS_IN_FLIGHT = 4
_LOCK_CLASS = 0x4D445231  # "MDR1": the advisory lock space of the lake's days
_MERGE_LOCK_CLASS = 0x4D445232  # "MDR2": one merger per day at a time
_EPOCH = date(1970, 1, 1)

log = logging.getLogger("mdr.lake")


class _Merger:
    """The lake's merges after appends, in one background thread per process: an append
    answers once committed, and a day asked for several times while a merge runs is
    merged once more after it."""

    def __init__(self, lake: S3Lake) -> None:
        self.lake = lake
        self.pending: set[date] = set()
        self.busy = False
        self.closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def request(self, days: Sequence[date]) -> None:
        with self._cond:
            if self.closed:
                return
            self.pending.update(days)
            if self._thread is None:
                # Not a daemon, and gone once idle: a process that exits lets the merge
                # that runs finish (an interrupted one is safe, but noisy at exit).
                self._thread = threading.Thread(target=self._run, name="mdr-lake-merge")
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self.pending:
                    self._thread = None
                    self._cond.notify_all()
                    return
                days = sorted(self.pending)
                self.pending.clear()
                self.busy = True
            try:
                self.lake.merge_after_commit(days)
            except Exception:  # committed appends are safe; the next one asks again
                log.warning("merging lake days %s failed", days, exc_info=True)
            finally:
                with self._cond:
                    self.busy = False
                    self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Until no merge is pending or running (True), or ``timeout`` seconds (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self.pending and not self.busy, timeout)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.wait_for(lambda: self._thread is None)


class _ByteBudget:
    """Bounds the bytes of day copies on local disk; one copy larger than the bound still
    runs, alone."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, size: int) -> int:
        size = min(max(size, 1), self.limit)
        with self._cond:
            self._cond.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size
        return size

    def release(self, size: int) -> None:
        with self._cond:
            self.used -= size
            self._cond.notify_all()


def _now() -> datetime:
    return datetime.now(UTC)


class S3Lake(Lake):
    """A lake under an ``s3://`` location whose manifest lives in the catalog at ``catalog_url``."""

    def __init__(
        self,
        location: S3Location,
        catalog_url: str,
        *,
        max_files_per_day: int = MAX_FILES_PER_DAY,
        retire_grace_seconds: float = RETIRE_GRACE_SECONDS,
        sweep_age_seconds: float = SWEEP_AGE_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        copy_budget_bytes: int = COPY_BUDGET_BYTES,
        clock: Callable[[], datetime] = _now,
        check: bool = True,
        background_merges: bool = True,
    ) -> None:
        """``background_merges``: merges after appends run in a thread of their own (the
        default: an append answers once committed), or in the appending call."""
        self.location = location
        self.store = connect(location)
        if check:
            check_reachable(self.store, location)
        self.engine = make_engine(catalog_url)
        if not sa.inspect(self.engine).has_table("lake_files"):
            self.engine.dispose()
            raise ValueError("record lake: the catalog has no lake tables (run `mdr migrate`)")
        self.postgres = self.engine.dialect.name == "postgresql"
        self.max_files_per_day = max(2, max_files_per_day)
        self.retire_grace = timedelta(seconds=retire_grace_seconds)
        self.sweep_age = timedelta(seconds=sweep_age_seconds)
        self.lease_length = timedelta(seconds=lease_seconds)
        self.clock = clock
        self._budget = _ByteBudget(copy_budget_bytes)
        self._index = DayIndex(read=self._read_index)
        self._index_lock = threading.Lock()
        # Each day's live keys as this process last saw them (guarded by _index_lock): a
        # writer checks against them without a query; the commit rechecks what is newer.
        self._keys: dict[date, list[str]] = {}
        self._merging = threading.Lock()  # one merge at a time in this process
        self.background_merges = background_merges
        self._merger = _Merger(self)

    def close(self) -> None:
        self._merger.close()  # lets a merge that runs finish
        self.engine.dispose()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the merges asked for by appends are done (False after ``timeout``)."""
        return self._merger.wait(timeout)

    def after_commit(self, counts: Mapping[date, int]) -> None:
        """An append committed, leaving ``counts`` files in its days: merge the days over
        3/4 of the bound, in the background or now (``background_merges``)."""
        days = [day for day, count in counts.items() if count > self._soft_bound()]
        if not days:
            return
        if self.background_merges:
            self._merger.request(days)
        else:
            self.merge_after_commit(days)

    # -- objects ------------------------------------------------------------------------

    def _new_key(self, day: date) -> str:
        stamp = int(time.time() * 1000)
        return f"data/{day.isoformat()}/part-{stamp:013d}-{secrets.token_hex(6)}.parquet"

    def _upload(self, key: str, table: pa.Table) -> int:
        sink = pa.BufferOutputStream()
        write_parquet(table, sink)
        data = sink.getvalue()
        obstore.put(self.store, key, data.to_pybytes())
        return int(data.size)

    def _download(self, key: str) -> pa.Buffer:
        try:
            return pa.py_buffer(obstore.get(self.store, key).bytes())
        except FileNotFoundError:
            raise FileNotFoundError(2, "lake object is gone", self.location.url(key)) from None

    def _read_table(self, key: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(pa.BufferReader(self._download(key)), columns=columns)

    def _read_index(self, urls: Sequence[str]) -> pa.Table:
        tables = [self._read_table(self.location.key(url), INDEX_COLUMNS) for url in urls]
        return pa.concat_tables(tables)

    def _known(self, day: date, keys: Sequence[str]) -> pa.Table:
        with self._index_lock:
            return self._index.get(day, [self.location.url(k) for k in keys])

    # -- the manifest -------------------------------------------------------------------

    def _lock_days(self, db: Connection, days: Sequence[date]) -> None:
        """Per-day advisory locks held to the end of the transaction (in day order, so two
        commits never deadlock); SQLite's write lock already serialises every commit."""
        if not self.postgres:
            return
        for day in sorted(set(days)):
            db.execute(
                sa.text("SELECT pg_advisory_xact_lock(:space, :day)"),
                {"space": _LOCK_CLASS, "day": (day - _EPOCH).days},
            )

    def _live(self, db: Connection, days: Sequence[date] | None = None) -> dict[date, list[Row]]:
        query = sa.select(
            lake_files.c.path,
            lake_files.c.day,
            lake_files.c.seq,
            lake_files.c.rows,
            lake_files.c.bytes,
        ).where(lake_files.c.retired_at.is_(None))
        if days is not None:
            query = query.where(lake_files.c.day.in_([d.isoformat() for d in days]))
        found: dict[date, list[Row]] = {day: [] for day in days or ()}
        for path, day, seq, rows, size in db.execute(
            query.order_by(lake_files.c.day, lake_files.c.seq, lake_files.c.path)
        ):
            row = Row(path, date.fromisoformat(day), seq, rows, size)
            found.setdefault(row.day, []).append(row)
        return found

    def _bump(self, db: Connection, day: date) -> int:
        """The day's next version (the caller holds the day's lock): one statement."""
        insert = (pg_insert if self.postgres else sqlite_insert)(lake_days).values(
            day=day.isoformat(), version=1
        )
        statement = insert.on_conflict_do_update(
            index_elements=[lake_days.c.day], set_={"version": lake_days.c.version + 1}
        ).returning(lake_days.c.version)
        return int(db.execute(statement).scalar_one())

    def _version(self, db: Connection) -> int:
        return int(
            db.execute(sa.select(sa.func.coalesce(sa.func.sum(lake_days.c.version), 0))).scalar()
            or 0
        )

    def _add_rows(self, db: Connection, rows: Sequence[Row]) -> None:
        if rows:
            db.execute(
                sa.insert(lake_files),
                [
                    {
                        "path": r.path,
                        "day": r.day.isoformat(),
                        "seq": r.seq,
                        "rows": r.rows,
                        "bytes": r.bytes,
                    }
                    for r in rows
                ],
            )

    def _retire(self, db: Connection, rows: Sequence[Row]) -> None:
        db.execute(
            sa.update(lake_files)
            .where(lake_files.c.path.in_([r.path for r in rows]))
            .values(retired_at=self.clock())
        )

    def _merge(self, db: Connection, day: date, rows: Sequence[Row], uploaded: list[str]) -> Row:
        """Replace ``rows`` of ``day`` by one file with the latest version of each id (inside
        the caller's transaction; the new key goes to ``uploaded`` for clean-up)."""
        merged = latest_sorted([self._read_table(r.path) for r in rows])
        key = self._new_key(day)
        uploaded.append(key)
        size = self._upload(key, merged)
        row = Row(key, day, min(r.seq for r in rows), merged.num_rows, size)
        self._retire(db, rows)
        self._add_rows(db, [row])
        return row

    # -- writing ------------------------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[LakeWriter]:
        writer = S3Writer(self)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.abort()  # a no-op after commit

    # -- reading ------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        lease = secrets.token_hex(16)
        now = self.clock()
        with self.engine.begin() as db:
            db.execute(
                sa.insert(lake_leases).values(
                    id=lease, taken_at=now, expires_at=now + self.lease_length
                )
            )
            live = self._live(db)
            version = self._version(db)
        sizes = {self.location.url(r.path): r.bytes for rows in live.values() for r in rows}
        files = {
            day: tuple(self.location.url(r.path) for r in rows)
            for day, rows in sorted(live.items())
        }

        @contextmanager
        def fetch(day: date, folder: Path) -> Iterator[tuple[str, ...]]:
            with self._copies(files[day], sizes, folder) as paths:
                yield paths

        def open_object(url: str) -> S3Reader:
            try:
                return S3Reader(self.store, self.location.key(url))
            except FileNotFoundError:
                raise FileNotFoundError(2, "lake object is gone", url) from None

        return Snapshot(version, files, lease=lease, fetch=fetch, open=open_object)

    @contextmanager
    def _copies(
        self, urls: Sequence[str], sizes: dict[str, int], folder: Path
    ) -> Iterator[tuple[str, ...]]:
        """Download one day's objects into ``folder`` (names keep the snapshot's order)."""
        held = self._budget.acquire(sum(sizes.get(u, 0) for u in urls))
        folder.mkdir(parents=True, exist_ok=True)
        try:
            paths = [folder / f"{n:05d}.parquet" for n in range(len(urls))]
            with ThreadPoolExecutor(DOWNLOADS_IN_FLIGHT, thread_name_prefix="lake-copy") as pool:
                for done in [
                    pool.submit(self._copy, url, path)
                    for url, path in zip(urls, paths, strict=True)
                ]:
                    done.result()
            yield tuple(str(p) for p in paths)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self._budget.release(held)

    def _copy(self, url: str, path: Path) -> None:
        try:
            response = obstore.get(self.store, self.location.key(url))
        except FileNotFoundError:
            raise FileNotFoundError(2, "lake object is gone", url) from None
        with path.open("wb") as handle:
            for chunk in response.stream(min_chunk_size=8 * 1024 * 1024):
                handle.write(chunk)

    def release(self, snapshot: Snapshot) -> None:
        if snapshot.lease:
            with self.engine.begin() as db:
                db.execute(sa.delete(lake_leases).where(lake_leases.c.id == snapshot.lease))

    def stats(self) -> LakeStats:
        with self.engine.begin() as db:
            live = self._live(db)
            version = self._version(db)
        return LakeStats(
            version,
            tuple(
                DayStats(day, len(rows), sum(r.rows for r in rows), sum(r.bytes for r in rows))
                for day, rows in sorted(live.items())
            ),
        )

    # -- maintenance --------------------------------------------------------------------

    def compact(self) -> CompactResult:
        """Merge every day with more than one file into one (without blocking appends while
        merging), then reclaim retired files and sweep unnamed objects."""
        with self.engine.begin() as db:
            live = self._live(db)
        before = sum(len(rows) for rows in live.values())
        after = before
        merged_days = 0
        for day, rows in sorted(live.items()):
            if len(rows) < 2:
                continue
            if self._merge_day(day, rows):
                merged_days += 1
                after -= len(rows) - 1
        self._reclaim()
        self._sweep()
        return CompactResult(merged_days, before, after)

    def _merge_day(self, day: date, rows: Sequence[Row]) -> bool:
        """Replace ``rows`` (live files of ``day``) by one file holding the latest version of
        each id, outside any append's commit: read, merge and upload with no lock held, then
        one short transaction under the day's lock that retires them, if all are still
        live.  False (the upload deleted) when another merge got there first."""
        try:
            table = latest_sorted([self._read_table(r.path) for r in rows])
        except FileNotFoundError:  # merged and reclaimed by another process meanwhile
            return False
        key = self._new_key(day)
        size = self._upload(key, table)
        try:
            with self.engine.begin() as db:
                self._lock_days(db, [day])
                still = {r.path for r in self._live(db, [day])[day]}
                if not all(r.path in still for r in rows):
                    obstore.delete(self.store, key)
                    return False
                self._bump(db, day)
                self._retire(db, rows)
                self._add_rows(db, [Row(key, day, min(r.seq for r in rows), table.num_rows, size)])
        except BaseException:
            obstore.delete(self.store, key)
            raise
        with self._index_lock:
            self._index.replace(
                day, [self.location.url(r.path) for r in rows], self.location.url(key)
            )
            self._keys.pop(day, None)
        return True

    @contextmanager
    def _merge_claim(self, day: date) -> Iterator[bool]:
        """Whether this process may merge ``day`` now: one merger per day at a time (a
        PostgreSQL session advisory lock, tried without waiting; in-process on SQLite).
        A merger that loses the race would only redo the work and lose at the end."""
        if not self._merging.acquire(blocking=False):
            yield False
            return
        try:
            if not self.postgres:
                yield True
                return
            with self.engine.connect() as db:
                number = (day - _EPOCH).days
                got = bool(
                    db.execute(
                        sa.text("SELECT pg_try_advisory_lock(:space, :day)"),
                        {"space": _MERGE_LOCK_CLASS, "day": number},
                    ).scalar()
                )
                db.commit()  # the session lock outlives the transaction: none stays open
                try:
                    yield got
                finally:
                    if got:
                        db.execute(
                            sa.text("SELECT pg_advisory_unlock(:space, :day)"),
                            {"space": _MERGE_LOCK_CLASS, "day": number},
                        )
                        db.commit()
        finally:
            self._merging.release()

    def _soft_bound(self) -> int:
        return max(1, self.max_files_per_day * 3 // 4)

    def merge_after_commit(self, days: Sequence[date]) -> None:
        """Keep each of ``days`` within 3/4 of the bound, after an append committed (outside its
        lock): the smallest files are merged when the day holds more than
        :meth:`_soft_bound` files (they leave about half of that), so a commit itself
        almost never has to merge and merges stay as rare as they were inside commits."""
        soft = self._soft_bound()
        merged = False
        for day in days:
            with self._merge_claim(day) as mine:
                if not mine:
                    continue  # another process is merging this day
                with self.engine.begin() as db:
                    live = self._live(db, [day])[day]
                smallest = smallest_over_bound(live, soft)
                if smallest and self._merge_day(day, smallest):
                    merged = True
        if merged:
            self._reclaim()

    def _reclaim(self) -> None:
        """Delete retired files that no live lease may still be reading."""
        now = self.clock()
        with self.engine.begin() as db:
            db.execute(sa.delete(lake_leases).where(lake_leases.c.expires_at <= now))
            oldest = db.execute(sa.select(sa.func.min(lake_leases.c.taken_at))).scalar()
            retired = db.execute(
                sa.select(lake_files.c.path, lake_files.c.retired_at).where(
                    lake_files.c.retired_at.is_not(None)
                )
            ).all()
        gone = [
            path
            for path, at in retired
            if now - at >= self.retire_grace and (oldest is None or oldest > at + self.retire_grace)
        ]
        for path in gone:
            obstore.delete(self.store, path)  # deleting a missing object is not an error
        if gone:
            with self.engine.begin() as db:
                db.execute(sa.delete(lake_files).where(lake_files.c.path.in_(gone)))

    def _sweep(self) -> None:
        """Delete objects under data/ that no manifest row names (crashed appends)."""
        cutoff = self.clock() - self.sweep_age
        listed = [
            meta["path"]
            for chunk in obstore.list(self.store, "data/", chunk_size=1000)
            for meta in chunk
            if meta["last_modified"] <= cutoff
        ]  # listed before the names are read: an object committed meanwhile is named
        with self.engine.begin() as db:
            named = set(db.execute(sa.select(lake_files.c.path)).scalars())
        for path in listed:
            if path not in named:
                obstore.delete(self.store, path)
