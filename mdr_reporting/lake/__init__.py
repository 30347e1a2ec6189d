"""Lake part (see architecture.md): where records live, chosen by the lake URL's scheme."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from mdr_reporting.lake.base import (
    AppendResult,
    CompactResult,
    DayStats,
    Lake,
    LakeConflict,
    LakeStats,
    LakeWriter,
    Snapshot,
)

__all__ = [
    "AppendResult",
    "CompactResult",
    "DayStats",
    "Lake",
    "LakeConflict",
    "LakeStats",
    "LakeWriter",
    "Snapshot",
    "open_lake",
]


def open_lake(url: str) -> Lake:
    """The lake at ``url``: ``file:///path`` today; ``s3://`` is a later issue."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from mdr_reporting.lake.local import LocalLake

        return LocalLake(unquote(parsed.path))
    raise ValueError(f"lake URL scheme {parsed.scheme!r} is not supported yet")
