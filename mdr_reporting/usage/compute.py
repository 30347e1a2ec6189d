"""Usage totals from the lake: messages, parts and cost per group, direction and currency.

DuckDB reads the window's files (row groups of other accounts and times skipped by
their statistics), keeps the latest version of each message (api.md section 6, as the
report engines decide it: per day, the latest ``updated_at``, on a tie the file listed
first) and sums ``cost`` as DECIMAL; partial totals are added with Python's ``Decimal``:
no cost ever passes through a binary float.

Per result row (one group, one direction, one currency):

- ``sent``: outbound messages (every status);
- ``delivered``: outbound messages whose status is ``delivered``;
- ``received``: inbound messages;
- ``parts``: the messages' parts; ``cost``: the sum of their ``cost`` (absent counts 0).

Groups: one for NO_AGGREGATION; the ``profile_id`` for PROFILE (absent: null); each
tag for TAGS (a message with two tags counts in both; one without tags in the null group).
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from mdr_reporting.engines.base import local_day_files
from mdr_reporting.lake.base import Snapshot
from mdr_reporting.usage.params import UsageQuery

__all__ = ["UsageRow", "compute_usage", "render_result"]

_TICK = timedelta(microseconds=1)
_MONEY_PLACES = Decimal("0.000001")


@dataclass
class UsageRow:
    group: str | None
    direction: str
    currency: str
    sent: int = 0
    delivered: int = 0
    received: int = 0
    parts: int = 0
    cost: Decimal = Decimal(0)


_GROUPS = {"NO_AGGREGATION": "NULL::VARCHAR", "PROFILE": "profile_id", "TAGS": "tags"}


def usage_sql(aggregation: str, single: list[str], multiple: list[str], accounts: int) -> str:
    """One statement over the window's files: ``single`` are files alone in their day
    (one row per id, read as they are), ``multiple`` the files of days with several (the
    latest version per id and day wins; on a tie the file listed first).

    Parameters: ``$single``, ``$multiple``, ``$a0``.. (the ``accounts``, bound one by one
    so that Parquet statistics skip other accounts' row groups), ``$start``, ``$end`` and
    ``$profiles`` (a list, empty for every profile).  For TAGS the totals are grouped by
    the tag list first and each list is then unnested to its distinct tags (a message
    without tags in the null group): few distinct lists, so the unnest is cheap.  The
    same group may come out in several rows; the caller adds them up.
    """
    columns = "id, created_at, updated_at, direction, status, parts, cost, currency, profile_id"
    if aggregation == "TAGS":
        columns += ", tags"
    names = ", ".join(f"$a{i}" for i in range(accounts))
    scope = f"account_id IN ({names}) AND created_at >= $start AND created_at < $end"
    parts = []
    if single:
        parts.append(
            f"SELECT {columns} FROM read_parquet($single, hive_partitioning = false) WHERE {scope}"
        )
    if multiple:
        parts.append(
            f"SELECT {columns} FROM read_parquet($multiple, hive_partitioning = false) "
            f"WHERE {scope} QUALIFY row_number() OVER (PARTITION BY id, "
            "epoch_us(created_at) // 86400000000 "
            "ORDER BY updated_at DESC, file_index, file_row_number) = 1"
        )
    latest = " UNION ALL ".join(parts)
    totals = f"""
SELECT {_GROUPS[aggregation]} AS grp, direction, currency,
       count(*) FILTER (WHERE direction = 'outbound') AS sent,
       count(*) FILTER (WHERE direction = 'outbound' AND status = 'delivered') AS delivered,
       count(*) FILTER (WHERE direction = 'inbound') AS received,
       coalesce(sum(parts), 0) AS parts,
       coalesce(sum(cost), 0) AS cost
FROM ({latest}) AS latest
WHERE len($profiles) = 0 OR list_contains($profiles, profile_id)
GROUP BY ALL
"""
    if aggregation != "TAGS":
        return totals
    return f"""
SELECT unnest(CASE WHEN len(list_distinct(grp)) > 0 THEN list_distinct(grp)
                   ELSE [NULL::VARCHAR] END) AS grp,
       direction, currency, sent, delivered, received, parts, cost
FROM ({totals}) AS by_list
"""


def _query_days(
    con: duckdb.DuckDBPyConnection,
    query: UsageQuery,
    accounts: Collection[str],
    days: list[tuple[str, ...]],
) -> list[tuple[Any, ...]]:
    single = [files[0] for files in days if len(files) == 1]
    multiple = [f for files in days if len(files) > 1 for f in files]
    if not single and not multiple:
        return []
    params: dict[str, Any] = {
        **{f"a{i}": account for i, account in enumerate(sorted(accounts))},
        "start": query.start,
        "end": query.end,
        "profiles": list(query.profiles),
    }
    if single:
        params["single"] = single
    if multiple:
        params["multiple"] = multiple
    sql = usage_sql(query.aggregation, single, multiple, len(accounts))
    return con.execute(sql, params).fetchall()


def compute_usage(
    snapshot: Snapshot,
    accounts: Collection[str],
    query: UsageQuery,
    work_dir: Path | None = None,
) -> list[UsageRow]:
    """The usage rows of ``query`` over the records of ``accounts``, sorted by group
    (null first), direction and currency.

    A local lake is read in one statement over every day; an S3 lake one day at a
    time, each copied locally for its statement."""
    totals: dict[tuple[str | None, str, str], UsageRow] = {}
    if not accounts:
        return []
    first, last = query.start.date(), (query.end - _TICK).date()
    days = sorted(d for d, files in snapshot.files.items() if files and first <= d <= last)
    con = duckdb.connect(config={"threads": 2})
    try:
        con.execute("SET TimeZone = 'UTC'")
        if snapshot.fetch is None:
            found = _query_days(con, query, accounts, [snapshot.files[d] for d in days])
        else:
            found = []
            with tempfile.TemporaryDirectory(prefix=".usage-", dir=work_dir) as work:
                for index, day in enumerate(days):
                    with local_day_files(snapshot, day, Path(work) / f"day-{index:05d}") as files:
                        found += _query_days(con, query, accounts, [files])
    finally:
        con.close()
    for group, direction, currency, sent, delivered, received, parts, cost in found:
        key = (group, direction, currency)
        row = totals.get(key)
        if row is None:
            row = totals[key] = UsageRow(*key)
        row.sent += int(sent)
        row.delivered += int(delivered)
        row.received += int(received)
        row.parts += int(parts)
        row.cost += Decimal(cost)
    return sorted(
        totals.values(), key=lambda r: (r.group is not None, r.group or "", r.direction, r.currency)
    )


def render_result(rows: list[UsageRow], aggregation: str) -> list[dict[str, Any]]:
    """The SDK's ``Result`` objects: counts and cost as strings (cost exact, 6 places)."""
    out = []
    for row in rows:
        item: dict[str, Any] = {"direction": row.direction}
        if aggregation == "PROFILE":
            item["profile_id"] = row.group
        elif aggregation == "TAGS":
            item["tags"] = row.group
        item.update(
            {
                "sent": str(row.sent),
                "delivered": str(row.delivered),
                "received": str(row.received),
                "parts": str(row.parts),
                "cost": str(row.cost.quantize(_MONEY_PLACES)),
                "currency": row.currency,
            }
        )
        out.append(item)
    return out
