"""The record lake's interface: Parquet files partitioned by the UTC day of ``created_at``.

Every version of a message lives in the partition of its ``created_at`` day
(``created_at`` never changes), so readers resolve the latest version one day
at a time.  A :class:`Snapshot` is an immutable list of files per day.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from io import IOBase
from pathlib import Path

import pyarrow as pa

__all__ = [
    "AppendResult",
    "CompactResult",
    "DayFetch",
    "DayStats",
    "Lake",
    "LakeConflict",
    "LakeStats",
    "LakeWriter",
    "Snapshot",
]


DayFetch = Callable[[date, Path], AbstractContextManager[tuple[str, ...]]]
"""Copies one day's files into a local folder; yields their local paths, removes them at exit."""


@dataclass(frozen=True)
class Snapshot:
    """What a reader sees: for each UTC day, the Parquet files holding its rows.

    ``files`` are local paths on a local lake and ``s3://`` URLs on S3; engines that read
    local files get them through :meth:`local_day`.
    """

    version: int
    files: Mapping[date, tuple[str, ...]] = field(default_factory=dict)
    lease: str = ""  # the S3 lake's lease row, released by Lake.release
    fetch: DayFetch | None = field(default=None, compare=False, repr=False)
    open: Callable[[str], IOBase] | None = field(default=None, compare=False, repr=False)
    """Opens one of ``files`` that is an object URL for ranged reads (footers); None on a
    local lake, whose files are paths."""

    def local_day(self, day: date, folder: Path) -> AbstractContextManager[tuple[str, ...]]:
        """Local paths of ``day``'s files while the context is open: the files themselves on
        a local lake, copies under ``folder`` (removed at exit) on S3.  A file that is gone
        raises FileNotFoundError."""
        if self.fetch is None:
            return nullcontext(self.files[day])
        return self.fetch(day, folder)

    def days(self, start: datetime, end: datetime) -> list[date]:
        """The days with files that may hold rows with ``start <= created_at < end`` (UTC)."""
        first = start.date()
        last = (end - timedelta(microseconds=1)).date()
        return sorted(d for d in self.files if first <= d <= last)


@dataclass(frozen=True)
class AppendResult:
    rows: int
    version: int


@dataclass(frozen=True)
class CompactResult:
    days: int
    files_before: int
    files_after: int


@dataclass(frozen=True)
class DayStats:
    day: date
    files: int
    rows: int
    bytes: int


@dataclass(frozen=True)
class LakeStats:
    version: int
    days: tuple[DayStats, ...]

    @property
    def files(self) -> int:
        return sum(d.files for d in self.days)

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.days)

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.days)


class LakeConflict(Exception):
    """Rows that would change the ``account_id`` or ``created_at`` of a stored id.

    ``rows`` holds (row index in the batch given to ``add``, field, reason).
    """

    def __init__(self, rows: list[tuple[int, str, str]]) -> None:
        super().__init__(f"{len(rows)} rows change the identity of a stored message")
        self.rows = rows


class LakeWriter(abc.ABC):
    """One atomic append of any number of batches: all become visible at commit, or none."""

    @abc.abstractmethod
    def add(self, batch: pa.Table) -> int:
        """Stage a validated batch (RECORD_SCHEMA); returns the rows that are new versions.

        Raises LakeConflict (and stages nothing of this batch) when a row changes
        the identity of a stored id."""

    @abc.abstractmethod
    def commit(self) -> AppendResult:
        """Make everything staged visible, durably, in one step."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop everything staged."""


class Lake(abc.ABC):
    """Append-only record store with atomic, durable batches and latest-version-wins reads."""

    def append(self, batch: pa.Table) -> AppendResult:
        """Store a validated batch (RECORD_SCHEMA) atomically and durably: a one-batch
        transaction."""
        with self.writer() as writer:
            writer.add(batch)
            return writer.commit()

    @abc.abstractmethod
    def writer(self) -> AbstractContextManager[LakeWriter]:
        """An exclusive transaction for a multi-batch append (a file import); aborts unless
        committed inside the ``with`` block."""

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """The current files per day; they stay readable while the snapshot is held."""

    @abc.abstractmethod
    def release(self, snapshot: Snapshot) -> None:
        """The reader is done with ``snapshot``; its files may now be reclaimed."""

    @abc.abstractmethod
    def compact(self) -> CompactResult:
        """Rewrite days with many files into few, keeping only the latest version of each id."""

    @abc.abstractmethod
    def stats(self) -> LakeStats:
        """Files, rows and bytes per day."""
