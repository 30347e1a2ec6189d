"""The engine interface: build one report file from a query description and a lake snapshot.

    EngineError
    ├── Cancelled             the cancel check said stop (DELETE of a Pending request)
    └── SnapshotFileMissing   a file of the snapshot is gone (compaction): retry with a fresh one

Engines read the snapshot one UTC day at a time (every version of a message
lives in its ``created_at`` day), so memory is bounded by the largest day.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mdr_reporting.domain.query import ReportQuery
from mdr_reporting.lake.base import Snapshot

__all__ = [
    "BuildResult",
    "CancelCheck",
    "Cancelled",
    "Engine",
    "EngineError",
    "ProgressCallback",
    "SnapshotFileMissing",
    "local_day_files",
]

ProgressCallback = Callable[[float], None]
"""Called after each day with the fraction done, 0.0 to 1.0."""

CancelCheck = Callable[[], bool]
"""Asked between days; ``True`` stops the build with :class:`Cancelled`."""


class EngineError(Exception):
    """A build did not produce a file."""


class Cancelled(EngineError):
    """The build was cancelled between two days; no file was written."""


class SnapshotFileMissing(EngineError):
    """A file named by the snapshot no longer exists: take a fresh snapshot and retry."""

    def __init__(self, path: str) -> None:
        super().__init__(f"lake file is gone: {path}")
        self.path = path


@contextmanager
def local_day_files(snapshot: Snapshot, day: date, folder: Path) -> Iterator[tuple[str, ...]]:
    """``snapshot.local_day``, with a file that is gone (an object compaction reclaimed
    meanwhile) raised as :class:`SnapshotFileMissing`, so the caller retries on a fresh
    snapshot; an error of the caller's own block passes through unchanged."""
    with ExitStack() as stack:
        try:
            files = stack.enter_context(snapshot.local_day(day, folder))
        except FileNotFoundError as exc:
            raise SnapshotFileMissing(str(exc.filename or exc)) from None
        yield files


@dataclass(frozen=True)
class BuildResult:
    """What the finished file holds: data rows (header excluded) and size in bytes."""

    rows: int
    size_bytes: int


class Engine(abc.ABC):
    """Builds report files; DuckDB and Spark implementations give byte-identical CSV."""

    @abc.abstractmethod
    def build(
        self,
        query: ReportQuery,
        snapshot: Snapshot,
        destination: Path,
        *,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
    ) -> BuildResult:
        """Write the report of ``query`` (in ``query.format``) to ``destination``.

        The file appears under ``destination`` only when complete (written to a
        temporary file beside it, then renamed).  Raises :class:`Cancelled` or
        :class:`SnapshotFileMissing`; on any error no file is left behind.
        """
