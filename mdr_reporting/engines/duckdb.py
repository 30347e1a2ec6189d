"""The embedded engine: DuckDB over the lake's Parquet files, one UTC day at a time.

Each day runs one statement (latest version per id, then the criteria, then
the order) and DuckDB's own COPY writes the result, formatted for the report,
to a part file (CSV or JSON, gzip-compressed when asked; or Parquet).  A few
days run at once; parts are appended in day order (``outputs``).  Consecutive
days that need neither the latest-version pass nor a sort (one laid-out file,
one account) run as one statement of a CSV report; a report of one statement
is written, header and all, straight into its file.  Memory is
bounded by DuckDB's ``memory_limit`` and the size of a day, not by the report.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
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
_WHOLE_CSV = "FORMAT csv, HEADER true, NEW_LINE '\\r\\n', COMMENT ''"
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

    Days that need no sort and no latest-version pass (one file the lake laid out, one
    account) are streamed: consecutive ones, up to ``group_rows`` rows by their footers,
    run as ONE statement (their files in day order are in report order), on a database
    kept for the life of the engine (in this process), so a small report costs one
    statement and no start-up.  That database never spills (a streamed scan holds a few
    row groups); a group that still runs out of memory runs again on the build's own
    database, which spills to the build's folder and also runs every other day.
    """

    def __init__(
        self,
        *,
        memory_limit: str = "512MB",
        threads: int | None = None,
        parallel_days: int = 2,
        group_rows: int = 4_000_000,
    ) -> None:
        self.memory_limit = memory_limit
        self.threads = threads
        self.parallel_days = max(1, parallel_days)
        self.group_rows = max(1, group_rows)
        self._streaming: duckdb.DuckDBPyConnection | None = None
        self._streaming_pid = 0
        self._streaming_lock = threading.Lock()

    def streaming_database(self) -> duckdb.DuckDBPyConnection:
        """The engine's long-lived database for streamed groups (one per process: a forked
        child never touches its parent's)."""
        with self._streaming_lock:
            if self._streaming is None or self._streaming_pid != os.getpid():
                config: dict[str, Any] = {
                    "memory_limit": self.memory_limit,
                    "temp_directory": "",  # never spills: a streamed scan needs no room
                    "preserve_insertion_order": True,
                }
                if self.threads:
                    config["threads"] = self.threads
                self._streaming = _connect(config)
                self._streaming_pid = os.getpid()
            return self._streaming

    def close(self) -> None:
        """Close the long-lived database (a later build opens a new one)."""
        with self._streaming_lock:
            if self._streaming is not None and self._streaming_pid == os.getpid():
                self._streaming.close()
            self._streaming = None

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


def _connect(config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    # A scan in report order is written without ORDER BY (preserve_insertion_order), and
    # DuckDB 2.0 keeps that order through filters and projections, but not through the
    # MARK join its "in_clause" optimizer makes of an IN list of five or more values
    # (status IN (...) of two record types): with two threads the row groups then come
    # out in any order.  Our IN lists are short; a plain filter evaluates them.
    con = duckdb.connect(config={**config, "disabled_optimizers": "in_clause"})
    # Only for lake files written before the folded numbers were stored.
    con.create_function(
        FOLD_FUNCTION, fold_numbers, [VARCHAR], VARCHAR, type=ARROW, side_effects=False
    )
    return con


@dataclass(frozen=True)
class _Group:
    """Days built by one statement: several streamed days, or any one day."""

    index: int  # of its first day in the report
    days: tuple[date, ...]
    facts: DayFacts | None  # merged, when known before the days are fetched (a local lake)
    streamed: bool  # laid out, one file a day, one account: a scan in report order
    whole: bool = False  # the report's only group, written with its header (plain CSV)


def _merged(facts: list[DayFacts]) -> DayFacts:
    ranges = [f.time_range for f in facts]
    known = [r for r in ranges if r is not None]
    return DayFacts(
        files=sum(f.files for f in facts),
        laid_out=all(f.laid_out for f in facts),
        folded=all(f.folded for f in facts),
        time_range=(
            (min(r[0] for r in known), max(r[1] for r in known))
            if known and len(known) == len(ranges)
            else None
        ),
        rows=sum(f.rows for f in facts),
        bytes=sum(f.bytes for f in facts),
    )


class _Days:
    """Runs the groups' statements on a small pool, each thread with its own DuckDB cursors."""

    def __init__(self, engine: DuckDBEngine, query: ReportQuery, workdir: Path) -> None:
        self.engine = engine
        self.query = query
        self.workdir = workdir
        self.parallel = engine.parallel_days
        self.zone = get_zone(query.timezone)
        self.options = _COPY_OPTIONS[query.format]
        self.shape = _SHAPES[query.format]
        self.columns = scanned_columns(query)
        self.local = threading.local()
        self.cursors: list[duckdb.DuckDBPyConnection] = []
        self.lock = threading.Lock()
        self.own: duckdb.DuckDBPyConnection | None = None  # opened when a day needs it
        self.groups = 0  # statements the build runs (set by run)
        # Days share the memory limit: each holds its estimate (from its files' footers)
        # while it runs, so as many run at once as fit; one that still runs out of memory
        # is built again alone (holding all of it), and later days go on as before.
        self.memory = _MemoryGate(memory_bytes(engine.memory_limit))

    def __enter__(self) -> _Days:
        return self

    def __exit__(self, *exc: object) -> None:
        for cursor in self.cursors:
            cursor.close()
        if self.own is not None:
            self.own.close()

    def _own(self) -> duckdb.DuckDBPyConnection:
        """The build's own database: spills to the build folder; opened on first use."""
        with self.lock:
            if self.own is None:
                config: dict[str, Any] = {
                    "memory_limit": self.engine.memory_limit,
                    "temp_directory": str(self.workdir / "spill"),
                    "preserve_insertion_order": True,
                }
                if self.engine.threads:
                    config["threads"] = self.engine.threads
                elif self.groups >= self.parallel:
                    # Enough days to keep every core busy at once: each statement on one
                    # thread.  A sort on two threads took ~30% more CPU and twice the
                    # memory (per-thread runs merged), so big sorted days spilled.
                    config["threads"] = 1
                self.own = _connect(config)
            return self.own

    def _cursor(self, streaming: bool) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the engine's long-lived database or the build's own."""
        name = "streaming" if streaming else "own"
        cursor: duckdb.DuckDBPyConnection | None = getattr(self.local, name, None)
        if cursor is None:
            database = self.engine.streaming_database() if streaming else self._own()
            with self.lock:
                cursor = database.cursor()
                self.cursors.append(cursor)
            setattr(self.local, name, cursor)
        return cursor

    def plan(self, snapshot: Snapshot, days: list[date]) -> list[_Group]:
        """Consecutive streamed days (up to ``group_rows`` rows) as one group; every other
        day alone.  Only plain CSV groups days: the other formats' bytes follow the parts
        (a gzip member or Parquet row groups per day), and those must not change.  A lake on
        S3 fetches each day's files in its own step, so its days stay apart."""
        if self.query.format != "csv" or snapshot.fetch is not None or len(days) < 2:
            return [_Group(i, (day,), None, False) for i, day in enumerate(days)]
        groups: list[_Group] = []
        run: list[tuple[date, DayFacts]] = []

        def close_run() -> None:
            if run:
                facts = _merged([f for _, f in run])
                index = days.index(run[0][0])
                groups.append(_Group(index, tuple(d for d, _ in run), facts, True))
                run.clear()

        for index, day in enumerate(days):
            files = snapshot.files[day]
            try:
                facts = day_facts(files, self.query.accounts, self.columns)
            except OSError:
                _check_files(files)  # a file that is gone: SnapshotFileMissing
                raise
            if not (self._one_account(facts) and facts.files == 1 and facts.laid_out):
                close_run()
                groups.append(_Group(index, (day,), facts, False))
                continue
            if run and sum(f.rows for _, f in run) + facts.rows > self.engine.group_rows:
                close_run()
            run.append((day, facts))
        close_run()
        return groups

    def run(
        self,
        snapshot: Snapshot,
        days: list[date],
        output: Assembler,
        progress: ProgressCallback | None,
        cancelled: CancelCheck | None,
    ) -> int:
        """Build every group, at most ``parallel`` at once, appending parts in day order."""
        rows = 0
        finished = 0
        pending: deque[tuple[_Group, Future[tuple[int, Path]]]] = deque()
        groups = self.plan(snapshot, days)
        self.groups = len(groups)
        if len(groups) == 1 and self.query.format == "csv" and output.adopts:
            # DuckDB writes the header and rows into the file that becomes the report.
            groups = [dataclasses.replace(groups[0], whole=True)]

        def collect() -> None:
            nonlocal rows, finished
            group, future = pending.popleft()
            count, part = future.result()
            if group.whole:
                output.adopt(part)
            else:
                output.append(part)
            rows += count
            finished += len(group.days)
            if progress is not None:
                progress(finished / len(days))

        with ThreadPoolExecutor(self.parallel, thread_name_prefix="report-day") as pool:
            try:
                for group in groups:
                    if cancelled is not None and cancelled():
                        raise Cancelled("the build was cancelled")
                    pending.append((group, pool.submit(self._fetched, group, snapshot)))
                    while len(pending) >= self.parallel:
                        collect()
                while pending:
                    collect()
            finally:
                for _, future in pending:
                    future.cancel()
        return rows

    def _fetched(self, group: _Group, snapshot: Snapshot) -> tuple[int, Path]:
        """The group's days over local paths: a lake on S3 copies its objects to the build
        folder."""
        with ExitStack() as stack:
            files: list[str] = []
            for offset, day in enumerate(group.days):
                folder = self.workdir / f"day-{group.index + offset:05d}"
                files += stack.enter_context(local_day_files(snapshot, day, folder))
            return self._day(group, tuple(files))

    def _day(self, group: _Group, files: tuple[str, ...]) -> tuple[int, Path]:
        """One group's rows into a part file: latest versions, criteria, order, formatting."""
        index = group.index
        part = self.workdir / f"part-{index:05d}"
        # The target is our own temporary path, not a user value; it still gets SQL quoting.
        target = str(part).replace("'", "''")
        try:
            _check_files(files)
            try:
                result = self._day_copy(group, files, target)
            except duckdb.InvalidInputException as exc:
                if "string encoding" not in str(exc):
                    raise
                # Stored before ingest checked text: read a cleaned copy, never fail the report.
                log.warning("day %d holds text that is not UTF-8; reading it cleaned", index)
                result = self._day_copy(group, _cleaned(files, part), target)
        except (OSError, duckdb.Error):
            _check_files(files)  # a file that vanished meanwhile is SnapshotFileMissing
            raise
        return (int(result[0]) if result else 0), part

    def _day_copy(self, group: _Group, files: tuple[str, ...], target: str) -> Any:
        index = group.index
        facts = group.facts
        if facts is None or len(group.days) == 1:
            facts = day_facts(files, self.query.accounts, self.columns)
        if facts.time_range is None:
            low, high = _scanned_range(self._cursor(streaming=True), files)
        else:
            low, high = facts.time_range
        if high - low > _SPAN_RANGE_US:  # a few far-off times: spans around the days held only
            spans = _occupied_spans(self._cursor(streaming=True), files, self.zone)
        else:
            spans = offset_spans(self.zone, low, high)
        folded = self.query.where is None or facts.folded
        # One file the lake laid out holds each id once, one account's rows in report order;
        # so do such files of consecutive days, one after another (ids never leave their day).
        # Several files (or files of older releases) need the latest-version pass only
        # when an id of the report's scope is there twice: one cheap probe tells.
        laid_out = group.streamed or (facts.files == 1 and facts.laid_out)
        unique = laid_out or not self._repeated_ids(index, files, facts)
        ordered = laid_out and (group.streamed or self._one_account(facts))
        stmt = day_statement(
            self.query, files, spans, self.shape, folded=folded, unique=unique, ordered=ordered
        )
        options = _WHOLE_CSV if group.whole else self.options
        sql = f"COPY ({stmt.sql}) TO '{target}' ({options})"
        need = day_memory(facts, unique=unique, ordered=ordered)
        return self._held(index, need, sql, stmt.params, streaming=ordered)

    def _one_account(self, facts: DayFacts) -> bool:
        """Whether the day's rows of the report are one account's: the report has one, or
        the files' footers admit only one of its accounts (a parent's own account often
        holds no records beside the one it manages)."""
        return len(self.query.accounts) == 1 or (facts.admitted is not None and facts.admitted <= 1)

    def _repeated_ids(self, index: int, files: tuple[str, ...], facts: DayFacts) -> bool:
        """Whether an id of the report's scope has more than one version in ``files``."""
        stmt = repeated_ids_statement(self.query, files)
        need = facts.rows * _PROBE_ROW_BYTES  # a hash table of the day's ids
        found = self._held(index, need, stmt.sql, stmt.params, streaming=False)
        return found is not None

    def _held(self, index: int, need: int, sql: str, params: Any, *, streaming: bool) -> Any:
        """One statement's first row, run while ``need`` bytes of the memory limit are held;
        one that runs out of memory beside other days runs again alone, on the build's own
        database (which spills to the build folder)."""
        try:
            with self.memory.hold(need):
                return self._copy(self._cursor(streaming=streaming), sql, params)
        except duckdb.OutOfMemoryException:
            if need >= self.memory.total and not streaming:
                raise
            log.info(
                "day %d ran out of memory beside other days (estimate %d bytes); it runs alone",
                index,
                need,
            )
        with self.memory.hold(self.memory.total):
            return self._copy(self._cursor(streaming=False), sql, params)

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
