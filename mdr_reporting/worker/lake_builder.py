"""The real ReportBuilder: compile the request, snapshot the lake, let the engine write the file."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from mdr_reporting.domain.query import ReportQuery, compile_query
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.engines.base import Cancelled, Engine, SnapshotFileMissing
from mdr_reporting.engines.lakefiles import metadata_rows
from mdr_reporting.lake import Lake, Snapshot
from mdr_reporting.worker.builder import BuildCancelled, BuildResult

__all__ = ["LakeReportBuilder", "estimated_rows", "report_fingerprint"]

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

    def fingerprint(self, request: RequestState) -> str:
        """What a build of ``request`` would hold if it started now (worker/reuse.py)."""
        query = compile_query(request.spec, request.accounts)
        snapshot = self.lake.snapshot()
        try:
            return report_fingerprint(query, snapshot)
        finally:
            self.lake.release(snapshot)

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
                return BuildResult(
                    record_count=result.rows,
                    engine=name,
                    fingerprint=report_fingerprint(query, snapshot),
                )
            except Cancelled:
                raise BuildCancelled(f"request {request.id} was cancelled") from None
            except SnapshotFileMissing as exc:
                if attempt == SNAPSHOT_RETRIES:
                    raise
                log.info("request %s: %s; retrying on a fresh snapshot", request.id, exc)
            finally:
                self.lake.release(snapshot)
        raise AssertionError("unreachable")  # pragma: no cover


FINGERPRINT_VERSION = 2  # raised when a release changes the bytes built from the same input


def report_fingerprint(query: ReportQuery, snapshot: Snapshot) -> str:
    """A digest of everything a report file's bytes depend on: the compiled query (accounts,
    window, criteria, zone, columns, format) and the lake files of the days it reads.

    Lake files never change once written (a new version or a merge writes new files), so
    the same files give the same rows; any ingest or merge touching one of those days
    changes the digest, while changes to other days do not.  Every engine writes the same
    bytes for the same input (architecture.md "Engines"), so the engine is left out.
    """
    days = snapshot.days(query.start, query.end) if query.accounts else []
    described = {
        "v": FINGERPRINT_VERSION,
        "query": repr(query),
        "files": [[day.isoformat(), list(snapshot.files.get(day, ()))] for day in days],
    }
    text = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def estimated_rows(query: ReportQuery, snapshot: Snapshot) -> int:
    """An upper bound of the rows a report reads: the rows of the row groups of its
    window's days that may hold its accounts, summed from the files' Parquet footers
    before the build (no data read)."""
    if not query.accounts:
        return 0
    days = snapshot.days(query.start, query.end)
    files = (f for day in days for f in snapshot.files.get(day, ()))
    return metadata_rows(files, snapshot.open, accounts=query.accounts)
