"""The embedded engine: DuckDB over the lake's Parquet files, one UTC day at a time.

Each day runs one statement (latest version per id, criteria, order) whose
output DuckDB writes itself (CSV and JSON, gzip-compressed when asked) to a
part file; parts are appended to the report in day order while the next day
is being built.  Gzip members concatenate into a valid gzip file, so
``csv.gz`` decompresses to exactly the bytes of the ``csv``.  Parquet output
streams Arrow batches into one writer.  Memory is bounded by DuckDB's
``memory_limit`` (it spills to the build's temporary folder), not by the
report's size.
"""

from __future__ import annotations

import abc
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from mdr_reporting.domain.query import ReportQuery
from mdr_reporting.domain.records import MONEY, TIMESTAMP
from mdr_reporting.domain.times import get_zone
from mdr_reporting.domain.zones import OffsetSpan, offset_spans
from mdr_reporting.engines.base import (
    BuildResult,
    CancelCheck,
    Cancelled,
    Engine,
    ProgressCallback,
    SnapshotFileMissing,
)
from mdr_reporting.engines.duckdb_sql import Shape, day_statement
from mdr_reporting.lake.base import Snapshot

__all__ = ["DuckDBEngine", "report_arrow_schema"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP_COLUMNS = ("created_at", "sent_at", "completed_at")
_COPY_OPTIONS = {
    # RFC 4180 with CRLF; COMMENT '' stops DuckDB quoting cells that contain '#'.
    "csv": "FORMAT csv, HEADER false, NEW_LINE '\\r\\n', COMMENT ''",
    "csv.gz": "FORMAT csv, HEADER false, NEW_LINE '\\r\\n', COMMENT '', COMPRESSION gzip",
    "jsonl.gz": "FORMAT json, COMPRESSION gzip",
}
_SHAPES: dict[str, Shape] = {
    "csv": "text",
    "csv.gz": "text",
    "jsonl.gz": "json",
    "parquet": "typed",
}


def report_arrow_schema(columns: tuple[str, ...]) -> pa.Schema:
    """The Parquet report's typed columns: UTC instants, exact decimals, tags as a list."""
    types = {
        "created_at": TIMESTAMP,
        "sent_at": TIMESTAMP,
        "completed_at": TIMESTAMP,
        "parts": pa.int32(),
        "tags": pa.list_(pa.string()),
        "rate": MONEY,
        "cost": MONEY,
        "media_size_bytes": pa.int64(),
    }
    return pa.schema([pa.field(name, types.get(name, pa.string())) for name in columns])


def _epoch_us(value: Any) -> int | None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - _EPOCH) // _ONE_US
    return None


_ONE_US = datetime.resolution


def _timestamp_range(files: tuple[str, ...]) -> tuple[int, int] | None:
    """Smallest and largest timestamp of the files, from Parquet statistics (no data read)."""
    low: int | None = None
    high: int | None = None
    for path in files:
        meta = pq.read_metadata(path)
        names = meta.schema.names
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for name in _TIMESTAMP_COLUMNS:
                stats = row_group.column(names.index(name)).statistics
                if stats is None or not stats.has_min_max:
                    if stats is not None and stats.null_count == row_group.num_rows:
                        continue
                    return None
                first, last = _epoch_us(stats.min), _epoch_us(stats.max)
                if first is None or last is None:
                    return None
                low = first if low is None else min(low, first)
                high = last if high is None else max(high, last)
    if low is None or high is None:
        return None
    return low, high


_FALLBACK_RANGE = (-2_208_988_800_000_000, 7_258_118_400_000_000)  # 1900 to 2200


class DuckDBEngine(Engine):
    """Builds reports in-process; ``memory_limit`` and ``threads`` bound its resources."""

    def __init__(self, *, memory_limit: str = "512MB", threads: int | None = None) -> None:
        self.memory_limit = memory_limit
        self.threads = threads

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
        days = snapshot.days(query.start, query.end) if query.accounts else []
        zone = get_zone(query.timezone)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=destination.parent) as work:
            workdir = Path(work)
            with self._connect(workdir) as con:
                rows = 0
                writer = _writer_for(con, query, workdir)
                try:
                    for index, day in enumerate(days):
                        if cancelled is not None and cancelled():
                            raise Cancelled("the build was cancelled")
                        files = snapshot.files[day]
                        _check_files(files)
                        found = _timestamp_range(files) or _FALLBACK_RANGE
                        spans = offset_spans(zone, *found)
                        try:
                            rows += writer.write_day(files, spans, index)
                        except duckdb.IOException as exc:
                            _check_files(files)
                            raise exc
                        if progress is not None:
                            progress((index + 1) / len(days))
                    writer.finish()
                finally:
                    writer.close()
            if progress is not None and not days:
                progress(1.0)
            size = writer.path.stat().st_size
            os.replace(writer.path, destination)
        return BuildResult(rows=rows, size_bytes=size)

    @contextmanager
    def _connect(self, workdir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
        config: dict[str, Any] = {
            "memory_limit": self.memory_limit,
            "temp_directory": str(workdir / "spill"),
            "preserve_insertion_order": True,
        }
        if self.threads:
            config["threads"] = self.threads
        con = duckdb.connect(config=config)
        try:
            yield con
        finally:
            con.close()


def _check_files(files: tuple[str, ...]) -> None:
    for path in files:
        if not os.path.exists(path):
            raise SnapshotFileMissing(path)


class _Writer(abc.ABC):
    """Appends each day's rows to the report in order."""

    def __init__(self, con: duckdb.DuckDBPyConnection, query: ReportQuery, workdir: Path) -> None:
        self.con = con
        self.query = query
        self.workdir = workdir
        self.path = workdir / "report"

    @abc.abstractmethod
    def write_day(self, files: tuple[str, ...], spans: list[OffsetSpan], index: int) -> int:
        """Write one day's rows after the previous days'; return how many."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Complete the file after the last day and close it."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release handles and threads, also after an error."""


class _CopyWriter(_Writer):
    """CSV and JSON: DuckDB's COPY writes each day to a part; a thread appends parts in order."""

    def __init__(self, con: duckdb.DuckDBPyConnection, query: ReportQuery, workdir: Path) -> None:
        super().__init__(con, query, workdir)
        self.options = _COPY_OPTIONS[query.format]
        self.shape = _SHAPES[query.format]
        self.output = self.path.open("wb")
        self.appender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-append")
        self.pending: list[Future[None]] = []
        header = ",".join(query.columns).encode() + b"\r\n"
        if query.format == "csv":
            self.output.write(header)
        elif query.format == "csv.gz":
            self.output.write(gzip.compress(header, mtime=0))

    def write_day(self, files: tuple[str, ...], spans: list[OffsetSpan], index: int) -> int:
        part = self.workdir / f"part-{index:05d}"
        stmt = day_statement(self.query, files, spans, self.shape)
        # The target is our own temporary path, not a user value; it still gets SQL quoting.
        target = str(part).replace("'", "''")
        result = self.con.execute(
            f"COPY ({stmt.sql}) TO '{target}' ({self.options})", stmt.params
        ).fetchone()
        self.pending.append(self.appender.submit(self._append, part))
        return int(result[0]) if result else 0

    def _append(self, part: Path) -> None:
        with part.open("rb") as source:
            shutil.copyfileobj(source, self.output, 1 << 20)
        part.unlink()

    def finish(self) -> None:
        for future in self.pending:
            future.result()
        self.pending.clear()
        if self.output.tell() == 0:
            # jsonl.gz of no rows: a valid, empty gzip file.
            self.output.write(gzip.compress(b"", mtime=0))
        self.output.flush()
        os.fsync(self.output.fileno())
        self.close()

    def close(self) -> None:
        self.appender.shutdown(wait=True)
        self.output.close()


class _ParquetWriter(_Writer):
    """Parquet: DuckDB's Arrow batches streamed into one ``pyarrow`` writer."""

    def __init__(self, con: duckdb.DuckDBPyConnection, query: ReportQuery, workdir: Path) -> None:
        super().__init__(con, query, workdir)
        self.schema = report_arrow_schema(query.columns)
        self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")

    def write_day(self, files: tuple[str, ...], spans: list[OffsetSpan], index: int) -> int:
        del index  # one writer for every day
        stmt = day_statement(self.query, files, spans, "typed")
        reader = self.con.sql(stmt.sql, params=stmt.params).to_arrow_reader(122_880)
        count = 0
        for batch in reader or ():
            table = pa.Table.from_batches([batch]).cast(self.schema)
            self.writer.write_table(table)
            count += table.num_rows
        return count

    def finish(self) -> None:
        self.writer.close()

    def close(self) -> None:
        self.writer.close()


def _writer_for(con: duckdb.DuckDBPyConnection, query: ReportQuery, workdir: Path) -> _Writer:
    if query.format == "parquet":
        return _ParquetWriter(con, query, workdir)
    if query.format in _COPY_OPTIONS:
        return _CopyWriter(con, query, workdir)
    raise ValueError(f"unknown report format {query.format!r}")
