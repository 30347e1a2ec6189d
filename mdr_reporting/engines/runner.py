"""One report request through an engine: compile, snapshot the lake, build, release.

This is the glue a worker calls.  A snapshot's files may vanish if compaction
reclaims them while a long build is still reading (the lake keeps them for a
grace period only), so a :class:`SnapshotFileMissing` build is retried on a
fresh snapshot a few times before it counts as a failed attempt.
"""

from __future__ import annotations

from pathlib import Path

from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.engines.base import (
    BuildResult,
    CancelCheck,
    Engine,
    ProgressCallback,
    SnapshotFileMissing,
)
from mdr_reporting.lake.base import Lake

__all__ = ["build_request"]


def build_request(
    engine: Engine,
    lake: Lake,
    request: RequestState,
    destination: Path,
    *,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    snapshot_attempts: int = 3,
) -> BuildResult:
    """Build ``request``'s report file at ``destination`` over the accounts it covers.

    Raises :class:`~mdr_reporting.engines.base.Cancelled` when ``cancelled`` says
    so, and :class:`SnapshotFileMissing` only after ``snapshot_attempts`` snapshots.
    """
    query = compile_query(request.spec, request.accounts)
    for attempt in range(1, snapshot_attempts + 1):
        snapshot = lake.snapshot()
        try:
            return engine.build(
                query, snapshot, destination, progress=progress, cancelled=cancelled
            )
        except SnapshotFileMissing:
            if attempt == snapshot_attempts:
                raise
        finally:
            lake.release(snapshot)
    raise AssertionError("unreachable: the last attempt returns or raises")
