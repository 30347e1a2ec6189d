"""The real ReportBuilder: compile the request, snapshot the lake, let the engine write the file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.engines.base import Cancelled, Engine, SnapshotFileMissing
from mdr_reporting.lake import Lake
from mdr_reporting.worker.builder import BuildCancelled, BuildResult

__all__ = ["LakeReportBuilder"]

log = logging.getLogger("mdr.worker")

SNAPSHOT_RETRIES = 3


class LakeReportBuilder:
    """Builds from a fresh lake snapshot, which it holds for the build and then releases.

    A file that compaction reclaimed between the snapshot and the read is not an
    error of the request: the build starts again on a fresh snapshot.
    """

    def __init__(self, lake: Lake, engine: Engine) -> None:
        self.lake = lake
        self.engine = engine

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
                result = self.engine.build(
                    query, snapshot, out_path, progress=progress, cancelled=cancelled
                )
                return BuildResult(record_count=result.rows)
            except Cancelled:
                raise BuildCancelled(f"request {request.id} was cancelled") from None
            except SnapshotFileMissing as exc:
                if attempt == SNAPSHOT_RETRIES:
                    raise
                log.info("request %s: %s; retrying on a fresh snapshot", request.id, exc)
            finally:
                self.lake.release(snapshot)
        raise AssertionError("unreachable")  # pragma: no cover
