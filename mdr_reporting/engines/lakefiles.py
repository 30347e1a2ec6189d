"""What engines read from the lake files' Parquet metadata, before reading any data.

A file is a local path or, on an S3 lake, an ``s3://`` URL read through the snapshot's
``open`` (ranged GETs of the footer only, :class:`mdr_reporting.objectstore.S3Reader`).
Object keys are never reused, so footers of URLs are cached per process; so are footers
of local files, under the file's inode, size and modification time (the lake never writes
a file twice; a path written again is read again).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import IOBase
from typing import Any

import pyarrow.parquet as pq

from mdr_reporting.domain.records import FOLDED_COLUMNS
from mdr_reporting.lake.build import LAYOUT_KEY, LAYOUT_VALUE

__all__ = [
    "CRITERIA_COLUMNS",
    "FOLD_FUNCTION",
    "TIMESTAMP_COLUMNS",
    "DayFacts",
    "Opener",
    "day_facts",
    "footer",
    "has_folded_numbers",
    "metadata_rows",
    "timestamp_range",
]

Opener = Callable[[str], IOBase]
"""Opens a lake file that is not a local path (an ``s3://`` URL) for ranged reads."""

_FOOTERS: OrderedDict[str | tuple[str, int, int, int, int], pq.FileMetaData] = OrderedDict()
_FOOTERS_LOCK = threading.Lock()
FOOTER_CACHE_ENTRIES = 4096


def footer(path: str, opener: Opener | None = None) -> pq.FileMetaData:
    """The Parquet footer of a local ``path``, or of an object URL through ``opener``
    (cached: an object's key names one content forever; a local file's by its inode,
    size and modification time)."""
    key: str | tuple[str, int, int, int, int] = path
    if "://" not in path:
        # A local path may be written again (tests, a lake folder made anew): the key is
        # the file as it stands (inode, size, modification time), checked on every read.
        stat = os.stat(path)
        key = (path, stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns)
    with _FOOTERS_LOCK:
        found = _FOOTERS.get(key)
        if found is not None:
            _FOOTERS.move_to_end(key)
            return found
    if "://" not in path:
        meta = pq.read_metadata(path)
    elif opener is None:
        raise ValueError(f"no way to open {path!r}: the snapshot of an object lake gives one")
    else:
        with opener(path) as handle:
            meta = pq.read_metadata(handle)
    with _FOOTERS_LOCK:
        _FOOTERS[key] = meta
        while len(_FOOTERS) > FOOTER_CACHE_ENTRIES:
            _FOOTERS.popitem(last=False)
    return meta


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


def has_folded_numbers(files: Iterable[str], opener: Opener | None = None) -> bool:
    """Whether every file holds ``cli_folded`` and ``cld_folded``."""
    wanted = set(FOLDED_COLUMNS.values())
    return all(wanted <= set(footer(path, opener).schema.names) for path in files)


def metadata_rows(
    files: Iterable[str],
    opener: Opener | None = None,
    *,
    accounts: Collection[str] | None = None,
) -> int:
    """The rows the files hold, from their footers (no data read); with ``accounts``, only
    the rows of row groups whose ``account_id`` statistics may hold one of them (lake
    files are sorted by account, so a group holds one account or a few neighbours)."""
    total = 0
    for path in files:
        meta = footer(path, opener)
        if accounts is None:
            total += meta.num_rows
            continue
        names = meta.schema.names
        column = names.index("account_id") if "account_id" in names else None
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            stats = row_group.column(column).statistics if column is not None else None
            if stats is None or not stats.has_min_max:
                total += row_group.num_rows  # no statistics: count the group
            elif any(stats.min <= account <= stats.max for account in accounts):
                total += row_group.num_rows
    return total


def _epoch_us(value: Any) -> int | None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - _EPOCH) // _ONE_US
    return None


_ONE_US = datetime.resolution


def timestamp_range(files: Iterable[str], opener: Opener | None = None) -> tuple[int, int] | None:
    """Smallest and largest timestamp of the files, from Parquet statistics (no data read)."""
    found: tuple[int, int] | None = None
    for path in files:
        found = _widened(found, footer(path, opener))
        if found is _UNKNOWN:
            return None
    return found


_UNKNOWN = (0, -1)


def _widened(found: tuple[int, int] | None, meta: Any) -> tuple[int, int] | None:
    """``found`` widened by one file's timestamp statistics; ``_UNKNOWN`` when one is missing."""
    if found is _UNKNOWN:
        return found
    names = meta.schema.names
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for name in TIMESTAMP_COLUMNS:
            stats = row_group.column(names.index(name)).statistics
            if stats is None or not stats.has_min_max:
                if stats is not None and stats.null_count == row_group.num_rows:
                    continue
                return _UNKNOWN
            first, last = _epoch_us(stats.min), _epoch_us(stats.max)
            if first is None or last is None:
                return _UNKNOWN
            found = (first, last) if found is None else (min(found[0], first), max(found[1], last))
    return found


@dataclass(frozen=True)
class DayFacts:
    """What one day's files say about themselves, from their footers (no data read)."""

    files: int
    laid_out: bool  # every file is laid out by the lake (unique ids, sorted; LAYOUT_KEY)
    folded: bool  # every file holds the folded numbers
    time_range: tuple[int, int] | None  # smallest and largest timestamp, epoch microseconds
    rows: int  # rows of the row groups that may hold the accounts' rows
    bytes: int  # their uncompressed size (of the given columns, or of all)
    # How many of the given accounts those row groups' statistics admit (every one of them
    # where a group has no statistics); None when no accounts were given.  A laid-out file
    # (sorted by account first) in which one account is admitted holds it in report order.
    admitted: int | None = None


def day_facts(
    files: Sequence[str],
    accounts: Iterable[str] = (),
    columns: Iterable[str] | None = None,
    opener: Opener | None = None,
) -> DayFacts:
    """One footer read per file: layout, folded numbers, timestamp range, and the rows and
    uncompressed bytes (of ``columns``, or of every column) of the row groups whose
    ``account_id`` statistics admit one of ``accounts`` (every row group when none are
    given, or without statistics)."""
    wanted = sorted(set(accounts))
    chosen = None if columns is None else set(columns)
    laid_out = folded = True
    rows = size = 0
    admitted: set[str] = set()
    found: tuple[int, int] | None = None
    for path in files:
        meta = footer(path, opener)
        found = _widened(found, meta)
        laid_out = laid_out and (meta.metadata or {}).get(LAYOUT_KEY) == LAYOUT_VALUE
        names = meta.schema.names
        folded = folded and set(FOLDED_COLUMNS.values()) <= set(names)
        account = names.index("account_id") if "account_id" in names else None
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            if wanted and account is not None:
                stats = row_group.column(account).statistics
                if stats is not None and stats.has_min_max:
                    low, high = stats.min, stats.max
                    inside = [a for a in wanted if low <= a <= high]
                    if not inside:
                        continue
                    admitted.update(inside)
                else:
                    admitted.update(wanted)
            else:
                admitted.update(wanted)
            rows += row_group.num_rows
            if chosen is None:
                size += row_group.total_byte_size
            else:
                size += sum(
                    row_group.column(i).total_uncompressed_size
                    for i, name in enumerate(names)
                    if name in chosen
                )
    time_range = None if found is _UNKNOWN else found
    return DayFacts(
        len(files), laid_out, folded, time_range, rows, size, len(admitted) if wanted else None
    )
