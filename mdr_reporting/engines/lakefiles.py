"""What engines read from the lake files' Parquet metadata, before reading any data."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq

from mdr_reporting.domain.records import FOLDED_COLUMNS

__all__ = [
    "CRITERIA_COLUMNS",
    "FOLD_FUNCTION",
    "TIMESTAMP_COLUMNS",
    "has_folded_numbers",
    "metadata_rows",
    "timestamp_range",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIMESTAMP_COLUMNS = ("created_at", "sent_at", "completed_at")
CRITERIA_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "direction",
    "status",
    "connection_id",
    "profile_id",
    "tags",
    "cli",
    "cld",
)
"""The columns a report's criteria and latest-version rule read, whatever it shows."""

FOLD_FUNCTION = "mdr_fold_number"
"""The name engines register the domain's ``fold_numbers`` under, for files without
the folded columns (written before the lake stored them; ``mdr lake compact`` adds them)."""


def has_folded_numbers(files: Iterable[str]) -> bool:
    """Whether every file holds ``cli_folded`` and ``cld_folded``."""
    wanted = set(FOLDED_COLUMNS.values())
    return all(wanted <= set(pq.read_schema(path).names) for path in files)


def metadata_rows(files: Iterable[str]) -> int:
    """The rows the files hold, from their footers (no data read)."""
    return sum(pq.read_metadata(path).num_rows for path in files)


def _epoch_us(value: Any) -> int | None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - _EPOCH) // _ONE_US
    return None


_ONE_US = datetime.resolution


def timestamp_range(files: Iterable[str]) -> tuple[int, int] | None:
    """Smallest and largest timestamp of the files, from Parquet statistics (no data read)."""
    low: int | None = None
    high: int | None = None
    for path in files:
        meta = pq.read_metadata(path)
        names = meta.schema.names
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for name in TIMESTAMP_COLUMNS:
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
