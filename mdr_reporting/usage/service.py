"""Usage reports as the API and the worker run them: compute on a held lake snapshot,
render in the SDK's ``MdrUsageReport`` shape, and the worker's side job for ``create``."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.times import utc_iso
from mdr_reporting.engines.base import SnapshotFileMissing
from mdr_reporting.lake import Lake
from mdr_reporting.usage.compute import compute_usage, render_result
from mdr_reporting.usage.params import UsageQuery
from mdr_reporting.usage.store import UsageReport, UsageStore

__all__ = ["UsageJobs", "UsageService", "render_report", "render_stored"]

log = logging.getLogger("mdr.usage")

SNAPSHOT_RETRIES = 3


class UsageService:
    def __init__(self, lake: Lake, work_dir: Path | None = None) -> None:
        self.lake = lake
        self.work_dir = work_dir

    def result(self, accounts: Collection[str], query: UsageQuery) -> list[dict[str, Any]]:
        """The result rows, computed now on a fresh snapshot (retried when compaction
        reclaimed one of its files meanwhile)."""
        for attempt in range(1, SNAPSHOT_RETRIES + 1):
            snapshot = self.lake.snapshot()
            try:
                rows = compute_usage(snapshot, accounts, query, self.work_dir)
                return render_result(rows, query.aggregation)
            except SnapshotFileMissing as exc:
                if attempt == SNAPSHOT_RETRIES:
                    raise
                log.info("usage: %s; retrying on a fresh snapshot", exc)
            finally:
                self.lake.release(snapshot)
        raise AssertionError("unreachable")  # pragma: no cover


_STATUS = {
    RequestStatus.PENDING: "PENDING",
    RequestStatus.COMPLETE: "COMPLETE",
    RequestStatus.FAILED: "FAILED",
    RequestStatus.EXPIRED: "EXPIRED",
}


def render_report(
    query: UsageQuery,
    *,
    report_id: str | None,
    status: RequestStatus,
    result: list[dict[str, Any]] | None,
    created_at: datetime,
    updated_at: datetime,
    error: str | None = None,
) -> dict[str, Any]:
    """The SDK's ``MdrUsageReport``: results inline (``report_url`` is always null)."""
    return {
        "id": report_id,
        "record_type": "mdr_usage_report",
        "aggregation_type": query.aggregation,
        "start_date": utc_iso(query.start),
        "end_date": utc_iso(query.end_date),
        "profiles": ",".join(query.profiles) or None,
        "connections": [],
        "status": _STATUS[status],
        "result": result or [],
        "report_url": None,
        "error": error,
        "created_at": utc_iso(created_at),
        "updated_at": utc_iso(updated_at),
    }


def render_stored(report: UsageReport) -> dict[str, Any]:
    return render_report(
        report.query,
        report_id=report.id,
        status=report.status,
        result=report.result,
        created_at=report.created_at,
        updated_at=report.updated_at,
        error=report.error,
    )


class UsageJobs:
    """The worker's side job: claim one Pending usage report, compute it, store the result.

    ``run_once`` has the worker loop's contract: False when there was nothing to do."""

    def __init__(
        self,
        store: UsageStore,
        service: UsageService,
        *,
        retry_after: timedelta = timedelta(seconds=5),
        idle_poll: float = 1.0,
    ) -> None:
        self.store = store
        self.service = service
        self.retry_after = retry_after
        # After finding nothing, the next look waits this long (shared by the slots): the
        # report queue's idle polls are not doubled by write-locking claims on SQLite.
        self.idle_poll = idle_poll
        self._idle_until = 0.0

    def run_once(self, owner: str) -> bool:
        now = time.monotonic()
        if now < self._idle_until:
            return False
        claim = self.store.claim(owner)
        if claim is None:
            self._idle_until = now + self.idle_poll
            return False
        report = claim.report
        try:
            result = self.service.result(report.accounts, report.query)
        except Exception as exc:
            outcome = self.store.fail_attempt(
                report.id,
                owner,
                "the usage report could not be computed because of an error in the service: "
                "create it again later",
                retry_after=self.retry_after,
            )
            log.warning(
                "usage report %s attempt %d failed (%s): %s",
                report.id,
                claim.attempt,
                outcome.name if outcome is not None else "lease lost",
                exc,
                exc_info=exc,
            )
            return True
        if self.store.complete(report.id, owner, result):
            log.info("usage report %s complete: %d rows", report.id, len(result))
        else:
            log.info("usage report %s was deleted while it was computed", report.id)
        return True
