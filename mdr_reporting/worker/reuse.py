"""The same report twice costs nothing: a request whose file would hold exactly the bytes of
a Complete request's file is completed from a copy of that file.

Two requests hold the same bytes when their fingerprints are equal: a digest of the
compiled query (accounts, window, criteria, zone, columns, format) and of the lake files
of the days it reads (``report_fingerprint`` in lake_builder.py).  Every Complete request
records its fingerprint in the catalog (``requests.fingerprint``, migration 0007_reuse);
one completed from another's file also names it (``reused_from``).

The copy is a file of its own under the new request's key (a hard link on a local
store, a server-side copy on S3), with the new request's own expiry: deleting or
expiring either request deletes only its own key, never the other's file, and never
one file twice.  A source must outlive the copy by :data:`REUSE_MARGIN`; one deleted in
the moment between the lookup and the copy fails that attempt, and the retry builds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.worker.builder import BuildResult, ReportBuilder

__all__ = ["REUSE_MARGIN", "ReusingBuilder"]

log = logging.getLogger("mdr.worker")

REUSE_MARGIN = timedelta(minutes=5)


class ReusingBuilder:
    """Wraps a builder: a request equal to a Complete one is answered with that request's
    file (``BuildResult.reused_key``; the worker copies it) instead of a build."""

    def __init__(self, inner: ReportBuilder, queue: JobQueue) -> None:
        self.inner = inner
        self.queue = queue

    def build(
        self,
        request: RequestState,
        out_path: Path,
        *,
        progress: Callable[[float], None],
        cancelled: Callable[[], bool],
    ) -> BuildResult:
        fingerprint_of = getattr(self.inner, "fingerprint", None)
        if fingerprint_of is not None:
            fingerprint = fingerprint_of(request)
            found = self.queue.reusable(fingerprint, lasting=REUSE_MARGIN)
            if found is not None and found.request_id != request.id:
                log.info("report %s: the same report as %s", request.id, found.request_id)
                return BuildResult(
                    record_count=found.record_count,
                    engine=found.engine,
                    fingerprint=fingerprint,
                    reused_from=found.request_id,
                    reused_key=found.file_key,
                )
        return self.inner.build(request, out_path, progress=progress, cancelled=cancelled)
