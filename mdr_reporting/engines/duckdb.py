"""The embedded engine: DuckDB over the lake's Parquet files, one UTC day at a time.

Each day runs one statement (latest version per id, then the criteria, then
the order) and DuckDB's own COPY writes the result, formatted for the report,
to a part file (CSV or JSON, gzip-compressed when asked; or Parquet).  A few
days run at once; parts are appended in day order (``outputs``).  Memory is
bounded by DuckDB's ``memory_limit`` and the size of a day, not by the report.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from duckdb.func import ARROW
from duckdb.sqltypes import VARCHAR

from mdr_reporting.domain.query import ReportQuery
from mdr_reporting.domain.records import fold_numbers
from mdr_reporting.domain.times import get_zone
from mdr_reporting.domain.zones import OffsetSpan, offset_spans
from mdr_reporting.engines.base import (
    BuildResult,
    CancelCheck,
    Cancelled,
    Engine,
    ProgressCallback,
    SnapshotFileMissing,
    local_day_files,
)
from mdr_reporting.engines.duckdb_sql import (
    Shape,
    day_statement,
    repeated_ids_statement,
    scanned_columns,
)
from mdr_reporting.engines.lakefiles import FOLD_FUNCTION, DayFacts, day_facts
from mdr_reporting.engines.outputs import Assembler, assembler_for
from mdr_reporting.lake.base import Snapshot

__all__ = ["DuckDBEngine"]

log = logging.getLogger("mdr.engine")

_COPY_OPTIONS = {
    # RFC 4180 with CRLF; COMMENT '' stops DuckDB quoting cells that contain '#'.
    "csv": "FORMAT csv, HEADER false, NEW_LINE '\\r\\n', COMMENT ''",
    "csv.gz": "FORMAT csv, HEADER false, NEW_LINE '\\r\\n', COMMENT '', COMPRESSION gzip",
    "jsonl.gz": "FORMAT json, COMPRESSION gzip",
    "parquet": "FORMAT parquet, COMPRESSION uncompressed",
}
_SHAPES: dict[str, Shape] = {
    "csv": "text",
    "csv.gz": "text",
    "jsonl.gz": "json",
    "parquet": "typed",
}


# Offsets are looked up day by day over a file's timestamp range; past this range (a
# record whose sent_at is years from its created_at) only the days that hold a timestamp
# are looked up, or one such record would hold a build for minutes.
_SPAN_RANGE_US = 400 * 86_400_000_000
_DAY_US = 86_400_000_000
_FIRST_DAY = (date(1, 1, 2) - date(1970, 1, 1)).days
_LAST_DAY = (date(9999, 12, 30) - date(1970, 1, 1)).days


def _occupied_spans(
    cursor: duckdb.DuckDBPyConnection, files: tuple[str, ...], zone: ZoneInfo
) -> list[OffsetSpan]:
    """Offset spans covering every day on which the files hold a timestamp (runs of days)."""
    found = cursor.execute(
        """SELECT DISTINCT d FROM (
               SELECT unnest([epoch_us(created_at), epoch_us(sent_at), epoch_us(completed_at)])
                      // 86400000000 AS d
               FROM read_parquet($files, hive_partitioning = false))
           WHERE d IS NOT NULL ORDER BY d""",
        {"files": list(files)},
    ).fetchall()
    # Clamped to where Python converts to any zone; times beyond take the nearest offset.
    days = sorted({min(max(int(row[0]), _FIRST_DAY), _LAST_DAY) for row in found}) or [0]
    spans: list[OffsetSpan] = []
    first = last = days[0]
    for day in [*days[1:], None]:
        if day is not None and day == last + 1:
            last = day
            continue
        spans += offset_spans(zone, first * _DAY_US, (last + 1) * _DAY_US - 1)
        if day is not None:
            first = last = day
    return spans


def _cleaned(files: tuple[str, ...], part: Path) -> tuple[str, ...]:
    """Copies of ``files`` beside ``part`` whose text that is not UTF-8 reads as U+FFFD."""
    out = []
    for number, path in enumerate(files):
        table = pq.read_table(path)
        for index, field in enumerate(table.schema):
            kind = field.type.value_type if pa.types.is_list(field.type) else field.type
            if not pa.types.is_string(kind):
                continue
            column = table.column(index)
            try:
                column.validate(full=True)
                continue
            except pa.ArrowInvalid:
                pass
            raw = pc.cast(column, pa.list_(pa.binary()) if kind != field.type else pa.binary())
            table = table.set_column(index, field, pa.array(_decode(raw.to_pylist()), field.type))
        copy = part.with_name(f"{part.name}-clean-{number}.parquet")
        pq.write_table(table, copy)
        out.append(str(copy))
    return tuple(out)


def _decode(values: list[Any]) -> list[Any]:
    return [
        None if v is None else _decode(v) if isinstance(v, list) else v.decode("utf-8", "replace")
        for v in values
    ]


def _scanned_range(cursor: duckdb.DuckDBPyConnection, files: tuple[str, ...]) -> tuple[int, int]:
    """The same range read from the data, for files written without statistics."""
    found = cursor.execute(
        """SELECT min(least(epoch_us(created_at), epoch_us(sent_at), epoch_us(completed_at))),
                  max(greatest(epoch_us(created_at), epoch_us(sent_at), epoch_us(completed_at)))
           FROM read_parquet($files, hive_partitioning = false)""",
        {"files": list(files)},
    ).fetchone()
    if found is None or found[0] is None:
        return 0, 0
    return int(found[0]), int(found[1])


class DuckDBEngine(Engine):
    """Builds reports in-process.

    ``memory_limit`` and ``threads`` bound DuckDB (it spills to the build's
    temporary folder); ``parallel_days`` days run at once, each a small query
    that alone would leave cores idle, and are appended in order.
    """

    def __init__(
        self, *, memory_limit: str = "512MB", threads: int | None = None, parallel_days: int = 2
    ) -> None:
        self.memory_limit = memory_limit
        self.threads = threads
        self.parallel_days = max(1, parallel_days)

    def build(
        self,
        query: ReportQuery,
        snapshot: Snapshot,
        destination: Path,
        *,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
    ) -> BuildResult:
        destination = Path(destination)
        days = [d for d in snapshot.days(query.start, query.end) if snapshot.files[d]]
        if not query.accounts:
            days = []
        with tempfile.TemporaryDirectory(prefix=".build-", dir=destination.parent) as work:
            workdir = Path(work)
            output = assembler_for(query.format, workdir / "report", query.columns)
            try:
                with _Days(self, query, workdir) as runner:
                    rows = runner.run(snapshot, days, output, progress, cancelled)
                output.finish()
            finally:
                output.close()
            if progress is not None and not days:
                progress(1.0)
            size = output.path.stat().st_size
            os.replace(output.path, destination)
        return BuildResult(rows=rows, size_bytes=size)


class _Days:
    """Runs the per-day statements on a small pool, each thread with its own DuckDB cursor."""

    def __init__(self, engine: DuckDBEngine, query: ReportQuery, workdir: Path) -> None:
        config: dict[str, Any] = {
            "memory_limit": engine.memory_limit,
            "temp_directory": str(workdir / "spill"),
            "preserve_insertion_order": True,
        }
        if engine.threads:
            config["threads"] = engine.threads
        self.con = duckdb.connect(config=config)
        # Only for lake files written before the folded numbers were stored.
        self.con.create_function(
            FOLD_FUNCTION, fold_numbers, [VARCHAR], VARCHAR, type=ARROW, side_effects=False
        )
        self.query = query
        self.workdir = workdir
        self.parallel = engine.parallel_days
        self.zone = get_zone(query.timezone)
        self.options = _COPY_OPTIONS[query.format]
        self.shape = _SHAPES[query.format]
        self.local = threading.local()
        self.cursors: list[duckdb.DuckDBPyConnection] = []
        self.lock = threading.Lock()
        # Days share the memory limit: each holds its estimate (from its files' footers)
        # while it runs, so as many run at once as fit; one that still runs out of memory
        # is built again alone (holding all of it), and later days go on as before.
        self.memory = _MemoryGate(memory_bytes(engine.memory_limit))

    def __enter__(self) -> _Days:
        return self

    def __exit__(self, *exc: object) -> None:
        for cursor in self.cursors:
            cursor.close()
        self.con.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self.local, "cursor", None)
        if cursor is None:
            with self.lock:
                cursor = self.con.cursor()
                self.cursors.append(cursor)
            self.local.cursor = cursor
        return cursor

    def run(
        self,
        snapshot: Snapshot,
        days: list[date],
        output: Assembler,
        progress: ProgressCallback | None,
        cancelled: CancelCheck | None,
    ) -> int:
        """Build every day, at most ``parallel`` at once, appending parts in day order."""
        rows = 0
        finished = 0
        pending: deque[Future[tuple[int, Path]]] = deque()

        def collect() -> None:
            nonlocal rows, finished
            count, part = pending.popleft().result()
            output.append(part)
            rows += count
            finished += 1
            if progress is not None:
                progress(finished / len(days))

        with ThreadPoolExecutor(self.parallel, thread_name_prefix="report-day") as pool:
            try:
                for index, day in enumerate(days):
                    if cancelled is not None and cancelled():
                        raise Cancelled("the build was cancelled")
                    pending.append(pool.submit(self._fetched_day, index, snapshot, day))
                    while len(pending) >= self.parallel:
                        collect()
                while pending:
                    collect()
            finally:
                for future in pending:
                    future.cancel()
        return rows

    def _fetched_day(self, index: int, snapshot: Snapshot, day: date) -> tuple[int, Path]:
        """The day over local paths: a lake on S3 copies its objects to the build folder."""
        with local_day_files(snapshot, day, self.workdir / f"day-{index:05d}") as files:
            return self._day(index, files)

    def _day(self, index: int, files: tuple[str, ...]) -> tuple[int, Path]:
        """One day's rows into a part file: latest versions, criteria, order, formatting."""
        part = self.workdir / f"part-{index:05d}"
        # The target is our own temporary path, not a user value; it still gets SQL quoting.
        target = str(part).replace("'", "''")
        try:
            _check_files(files)
            cursor = self._cursor()
            try:
                result = self._day_copy(index, cursor, files, target)
            except duckdb.InvalidInputException as exc:
                if "string encoding" not in str(exc):
                    raise
                # Stored before ingest checked text: read a cleaned copy, never fail the report.
                log.warning("day %d holds text that is not UTF-8; reading it cleaned", index)
                result = self._day_copy(index, cursor, _cleaned(files, part), target)
        except (OSError, duckdb.Error):
            _check_files(files)  # a file that vanished meanwhile is SnapshotFileMissing
            raise
        return (int(result[0]) if result else 0), part

    def _day_copy(
        self, index: int, cursor: duckdb.DuckDBPyConnection, files: tuple[str, ...], target: str
    ) -> Any:
        facts = day_facts(files, self.query.accounts, scanned_columns(self.query))
        low, high = facts.time_range or _scanned_range(cursor, files)
        if high - low > _SPAN_RANGE_US:  # a few far-off times: spans around the days held only
            spans = _occupied_spans(cursor, files, self.zone)
        else:
            spans = offset_spans(self.zone, low, high)
        folded = self.query.where is None or facts.folded
        # One file the lake laid out holds each id once, one account's rows in report order:
        # so are the report's rows when its footer admits only one of the report's accounts
        # (a parent's own account often holds no records beside the one it manages).
        # Several files (or files of older releases) need the latest-version pass only
        # when an id of the report's scope is there twice: one cheap probe tells.
        laid_out_file = facts.files == 1 and facts.laid_out
        unique = laid_out_file or not self._repeated_ids(index, cursor, files, facts)
        one_account = len(self.query.accounts) == 1 or (
            facts.admitted is not None and facts.admitted <= 1
        )
        ordered = laid_out_file and one_account
        stmt = day_statement(
            self.query, files, spans, self.shape, folded=folded, unique=unique, ordered=ordered
        )
        sql = f"COPY ({stmt.sql}) TO '{target}' ({self.options})"
        need = day_memory(facts, unique=unique, ordered=ordered)
        return self._held(index, need, cursor, sql, stmt.params)

    def _repeated_ids(
        self,
        index: int,
        cursor: duckdb.DuckDBPyConnection,
        files: tuple[str, ...],
        facts: DayFacts,
    ) -> bool:
        """Whether an id of the report's scope has more than one version in ``files``."""
        stmt = repeated_ids_statement(self.query, files)
        need = facts.rows * _PROBE_ROW_BYTES  # a hash table of the day's ids
        return self._held(index, need, cursor, stmt.sql, stmt.params) is not None

    def _held(
        self, index: int, need: int, cursor: duckdb.DuckDBPyConnection, sql: str, params: Any
    ) -> Any:
        """One statement's first row, run while ``need`` bytes of the memory limit are held;
        one that runs out of memory beside other days runs again alone."""
        try:
            with self.memory.hold(need):
                return self._copy(cursor, sql, params)
        except duckdb.OutOfMemoryException:
            if need >= self.memory.total:
                raise
            log.info(
                "day %d ran out of memory beside other days (estimate %d bytes); it runs alone",
                index,
                need,
            )
        with self.memory.hold(self.memory.total):
            return self._copy(cursor, sql, params)

    def _copy(self, cursor: duckdb.DuckDBPyConnection, sql: str, params: Any) -> Any:
        return cursor.execute(sql, params).fetchone()


# What a day's statement holds in DuckDB's memory, per uncompressed byte of the row groups
# it reads: a scan in file order streams (a few row groups at a time); a sort keeps the
# day's rows; the latest-version pass keeps them (MATERIALIZED) plus a hash table of them.
_STREAM_BYTES = 32 * 1024 * 1024
_SORT_FACTOR = 1.5
_LATEST_FACTOR = 3.0
_PROBE_ROW_BYTES = 128  # the repeated-id probe: an id (36-byte UUID text) in a hash table


def day_memory(facts: DayFacts, *, unique: bool, ordered: bool) -> int:
    """The memory one day's statement is expected to need, from its files' footers."""
    if ordered:
        return min(_STREAM_BYTES, facts.bytes)
    return int(facts.bytes * (_SORT_FACTOR if unique else _LATEST_FACTOR))


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def memory_bytes(limit: str) -> int:
    """DuckDB's ``memory_limit`` text ('512MB', '1GiB', '2 GB') in bytes (KB = 1000, KiB = 1024,
    as DuckDB reads them)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", limit)
    if found is None or found.group(2).lower() not in _UNITS:
        raise ValueError(f"not a memory size: {limit!r}")
    return max(1, int(float(found.group(1)) * _UNITS[found.group(2).lower()]))


class _MemoryGate:
    """A counting semaphore over bytes: a holder waits until its amount is free."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self.condition = threading.Condition()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(max(amount, 1), self.total)  # a day larger than the limit runs alone
        with self.condition:
            while self.free < amount:
                self.condition.wait()
            self.free -= amount
        try:
            yield
        finally:
            with self.condition:
                self.free += amount
                self.condition.notify_all()


def _check_files(files: tuple[str, ...]) -> None:
    for path in files:
        if not os.path.exists(path):
            raise SnapshotFileMissing(path)
