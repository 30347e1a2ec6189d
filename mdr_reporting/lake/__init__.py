"""Lake part (see architecture.md): where records live, chosen by the lake URL's scheme."""

from __future__ import annotations

from typing import TYPE_CHECKING
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

if TYPE_CHECKING:
    from mdr_reporting.settings import Settings

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


def open_lake(url: str, settings: Settings | None = None) -> Lake:
    """The lake at ``url``: ``file:///path``, or ``s3://bucket/prefix`` with its manifest in
    the catalog of ``settings`` (which also give the S3 endpoint and region).

    An unreachable bucket or a catalog without the lake's tables raises ValueError (one line).
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from mdr_reporting.lake.local import LocalLake

        return LocalLake(unquote(parsed.path))
    if parsed.scheme == "s3":
        if settings is None:
            raise ValueError("an s3:// lake keeps its manifest in the catalog: settings needed")
        from mdr_reporting.lake.s3 import S3Lake
        from mdr_reporting.objectstore import S3Location

        return S3Lake(S3Location.parse(url, settings), settings.catalog_url)
    raise ValueError(f"lake URL scheme {parsed.scheme!r} is not supported")
