"""Detail record search over the lake: one page of latest versions, newest day first.

The days of the window are read one at a time in the order of the sort (newest
first for ``-created_at``), each with row-group skipping (:mod:`.scan`), and the
search stops as soon as it holds the page plus one more record (which says whether
another page follows).  Only the criteria columns are read to find the matches; the
full records are read for the rows of the page alone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdr_reporting.domain.records import FOLDED_COLUMNS, RECORD_COLUMNS
from mdr_reporting.domain.times import utc_iso
from mdr_reporting.engines.base import local_day_files
from mdr_reporting.lake.base import Snapshot
from mdr_reporting.search.params import RecordSearch
from mdr_reporting.search.scan import FILE, ROW, Window, read_rows, scan_day

__all__ = ["CARRIER_STATUS", "SearchPage", "render_record", "search_records"]

_TICK = timedelta(microseconds=1)
CARRIER_STATUS = {
    "delivered": "delivered",
    "delivery_unconfirmed": "dlr_unconfirmed",
    "received": "received",
    "delivery_failed": "failed",
    "sending_failed": "gw_reject",
}
"""The carrier's spelling of each final status (the SDK's ``MessageDetailRecord.status``);
queued, sending and sent are not final and have none."""
_SHOWN = [c for c in RECORD_COLUMNS if c != "message_body"]


@dataclass(frozen=True)
class SearchPage:
    """The page's records (RECORD_SCHEMA columns but the message body), and whether the
    search read to the end of the window (then ``total`` is exact)."""

    records: list[dict[str, Any]]
    total_seen: int  # matches counted before the search stopped (offset, page, one more)
    exhausted: bool
    days_read: int
    row_groups_read: int


def _criteria(table: pa.Table, search: RecordSearch) -> pa.Array | None:
    masks: list[Any] = []
    if search.directions:
        masks.append(pc.is_in(table.column("direction"), value_set=pa.array(search.directions)))
    if search.statuses:
        masks.append(pc.is_in(table.column("status"), value_set=pa.array(search.statuses)))
    if search.profiles:
        masks.append(
            pc.fill_null(
                pc.is_in(table.column("profile_id"), value_set=pa.array(search.profiles)), False
            )
        )
    if search.tags:
        tags = table.column("tags").combine_chunks()  # parent indices over the whole column
        flat = pc.list_flatten(tags)
        parents = pc.list_parent_indices(tags).to_numpy()
        hit = pc.fill_null(pc.is_in(flat, value_set=pa.array(search.tags)), False).to_numpy(
            zero_copy_only=False
        )
        has = np.zeros(table.num_rows, dtype=bool)
        has[parents[hit]] = True
        masks.append(pa.array(has))
    for term in search.numbers:
        column = table.column(FOLDED_COLUMNS[term.field])
        if term.match == "starts_with":
            test = pc.starts_with(column, term.value)
        elif term.match == "ends_with":
            test = pc.ends_with(column, term.value)
        else:
            test = pc.match_substring(column, term.value)
        masks.append(pc.fill_null(test, False))
    if not masks:
        return None
    mask = masks[0]
    for other in masks[1:]:
        mask = pc.and_(mask, other)
    return mask


def _criteria_columns(search: RecordSearch) -> list[str]:
    columns = ["direction", "status"]
    if search.profiles:
        columns.append("profile_id")
    if search.tags:
        columns.append("tags")
    columns += sorted({FOLDED_COLUMNS[t.field] for t in search.numbers})
    return columns


def search_records(
    snapshot: Snapshot,
    accounts: Collection[str],
    search: RecordSearch,
    work_dir: Path | None = None,
) -> SearchPage:
    """The page ``search`` asks for among the records of ``accounts`` in ``snapshot``."""
    if search.empty or not accounts:
        return SearchPage([], 0, True, 0, 0)
    days = sorted(
        (
            day
            for day, files in snapshot.files.items()
            if files
            and (search.start is None or day >= search.start.date())
            and (search.end is None or day <= (search.end - _TICK).date())
        ),
        reverse=search.descending,
    )
    window = Window(search.start, search.end)
    columns = _criteria_columns(search)
    wanted_low, wanted_high = search.offset, search.offset + search.page_size
    seen = 0
    records: list[dict[str, Any]] = []
    days_read = groups_read = 0
    order = "descending" if search.descending else "ascending"
    # A local lake's files are read in place; an S3 lake's day is copied here first.
    scratch = (
        tempfile.TemporaryDirectory(prefix=".search-", dir=work_dir)
        if snapshot.fetch is not None
        else nullcontext("")
    )
    with scratch as work:
        for index, day in enumerate(days):
            with local_day_files(snapshot, day, Path(work) / f"day-{index:05d}") as files:
                scanned = scan_day(files, accounts, window, columns)
                days_read += 1
                groups_read += scanned.row_groups_read
                table = scanned.table
                mask = _criteria(table, search)
                if mask is not None:
                    table = table.filter(mask)
                if table.num_rows == 0:
                    continue
                picks = table.select(["created_at", "id", FILE, ROW])
                picks = picks.take(
                    pc.sort_indices(picks, sort_keys=[("created_at", order), ("id", order)])
                )
                low = max(wanted_low - seen, 0)
                high = min(wanted_high - seen, picks.num_rows)
                if low < high:
                    rows = read_rows(files, picks.slice(low, high - low), _SHOWN)
                    records += rows.to_pylist()
                seen += picks.num_rows
            if seen > wanted_high:
                return SearchPage(records, wanted_high + 1, False, days_read, groups_read)
    return SearchPage(records, seen, True, days_read, groups_read)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.6f}"


def render_record(row: dict[str, Any]) -> dict[str, Any]:
    """A record as the SDK's ``MessageDetailRecord`` (plus this service's own fields:
    ``message_status`` is the status in this service's words, api.md section 6)."""
    tags = row.get("tags") or []
    return {
        "record_type": "message_detail_record",
        "uuid": row["id"],
        "user_id": row["account_id"],
        "created_at": utc_iso(row["created_at"]),
        "updated_at": utc_iso(row["updated_at"]),
        "sent_at": utc_iso(row["sent_at"]) if row.get("sent_at") else None,
        "completed_at": utc_iso(row["completed_at"]) if row.get("completed_at") else None,
        "direction": row["direction"],
        "cli": row["cli"],
        "cld": row["cld"],
        "message_type": row["message_type"],
        "parts": row["parts"],
        "status": CARRIER_STATUS.get(row["status"]),
        "message_status": row["status"],
        "errors": [row["error_code"]] if row.get("error_code") else [],
        "carrier": row.get("carrier"),
        "mcc": row.get("mcc"),
        "mnc": row.get("mnc"),
        "country_code": row.get("country_code"),
        "connection_id": row.get("connection_id"),
        "profile_id": row.get("profile_id"),
        "tags": ",".join(tags) if tags else None,
        "rate": _money(row.get("rate")),
        "cost": _money(row.get("cost")),
        "currency": row["currency"],
        "media_size_bytes": row.get("media_size_bytes"),
    }
