"""The real ReportBuilder: compile the request, snapshot the lake, let the engine write the file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mdr_reporting.domain.query import ReportQuery, compile_query
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.engines.base import Cancelled, Engine, SnapshotFileMissing
from mdr_reporting.engines.lakefiles import metadata_rows
from mdr_reporting.lake import Lake, Snapshot
from mdr_reporting.worker.builder import BuildCancelled, BuildResult

__all__ = ["LakeReportBuilder", "estimated_rows"]

log = logging.getLogger("mdr.worker")

SNAPSHOT_RETRIES = 3


class LakeReportBuilder:
    """Builds from a fresh lake snapshot, which it holds for the build and then releases.

    A file that compaction reclaimed between the snapshot and the read is not an
    error of the request: the build starts again on a fresh snapshot.
    """

    def __init__(
        self,
        lake: Lake,
        engine: Engine,
        *,
        name: str = "duckdb",
        large: tuple[str, Engine] | None = None,
        large_rows: int = 0,
    ) -> None:
        """``engine`` (called ``name``) builds every report, or with ``large`` (a name and
        an engine) those whose days hold more than ``large_rows`` rows (MDR_ENGINE=auto)."""
        self.lake = lake
        self.engine = engine
        self.name = name
        self.large = large
        self.large_rows = large_rows

    def choose(self, query: ReportQuery, snapshot: Snapshot) -> tuple[str, Engine]:
        """The engine for this report, from the Parquet metadata (no data is read)."""
        if self.large is not None and estimated_rows(query, snapshot) > self.large_rows:
            return self.large
        return self.name, self.engine

    def build(
        self,
        request: RequestState,
        out_path: Path,
        *,
        progress: Callable[[float], None],
        cancelled: Callable[[], bool],
    ) -> BuildResult:
        query = compile_query(request.spec, request.accounts)
        for attempt in range(1, SNAPSHOT_RETRIES + 1):
            snapshot = self.lake.snapshot()
            try:
                name, engine = self.choose(query, snapshot)
                result = engine.build(
                    query, snapshot, out_path, progress=progress, cancelled=cancelled
                )
                return BuildResult(record_count=result.rows, engine=name)
            except Cancelled:
                raise BuildCancelled(f"request {request.id} was cancelled") from None
            except SnapshotFileMissing as exc:
                if attempt == SNAPSHOT_RETRIES:
                    raise
                log.info("request %s: %s; retrying on a fresh snapshot", request.id, exc)
            finally:
                self.lake.release(snapshot)
        raise AssertionError("unreachable")  # pragma: no cover


def estimated_rows(query: ReportQuery, snapshot: Snapshot) -> int:
    """An upper bound of the rows a report reads: the rows of the row groups of its
    window's days that may hold its accounts, summed from the files' Parquet footers
    before the build (no data read)."""
    if not query.accounts:
        return 0
    days = snapshot.days(query.start, query.end)
    files = (f for day in days for f in snapshot.files.get(day, ()))
    return metadata_rows(files, snapshot.open, accounts=query.accounts)
