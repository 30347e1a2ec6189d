"""The search as the API runs it: a lake snapshot held for the read, retried when
compaction reclaimed one of its files meanwhile."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

from mdr_reporting.engines.base import SnapshotFileMissing
from mdr_reporting.lake import Lake
from mdr_reporting.search.params import RecordSearch
from mdr_reporting.search.records import SearchPage, render_record, search_records

__all__ = ["RecordSearchService"]

log = logging.getLogger("mdr.search")

SNAPSHOT_RETRIES = 3


class RecordSearchService:
    def __init__(self, lake: Lake, work_dir: Path | None = None) -> None:
        self.lake = lake
        self.work_dir = work_dir  # where an S3 lake's day is copied while it is read

    def page(self, accounts: Collection[str], search: RecordSearch) -> SearchPage:
        for attempt in range(1, SNAPSHOT_RETRIES + 1):
            snapshot = self.lake.snapshot()
            try:
                return search_records(snapshot, accounts, search, self.work_dir)
            except SnapshotFileMissing as exc:
                if attempt == SNAPSHOT_RETRIES:
                    raise
                log.info("search: %s; retrying on a fresh snapshot", exc)
            finally:
                self.lake.release(snapshot)
        raise AssertionError("unreachable")  # pragma: no cover

    def envelope(self, accounts: Collection[str], search: RecordSearch) -> dict[str, Any]:
        """The v2 list body: ``data`` and ``meta``.

        ``total_results`` and ``total_pages`` are exact when the search read to the end
        of the window (``meta.total_exact``); otherwise the search stopped one record
        past this page, and they count up to that record: the next page exists.
        """
        found = self.page(accounts, search)
        total = found.total_seen
        size = search.page_size
        pages = (total + size - 1) // size
        return {
            "data": [render_record(row) for row in found.records],
            "meta": {
                "page_number": search.page_number,
                "page_size": size,
                "total_pages": pages,
                "total_results": total,
                "total_exact": found.exhausted,
            },
        }
