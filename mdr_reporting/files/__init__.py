"""Report files: the store (chosen by ``files_url``), formats and signed download links."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from mdr_reporting.files.base import FileStore, InvalidKey, StoredFile
from mdr_reporting.files.formats import FileFormat, file_format
from mdr_reporting.files.local import LocalFileStore
from mdr_reporting.files.signing import LinkSigner, SignedLink

if TYPE_CHECKING:
    from mdr_reporting.settings import Settings

__all__ = [
    "FileFormat",
    "FileStore",
    "InvalidKey",
    "LinkSigner",
    "LocalFileStore",
    "SignedLink",
    "StoredFile",
    "file_format",
    "open_file_store",
]


def open_file_store(url: str, settings: Settings | None = None) -> FileStore:
    """The store a ``files_url`` names: ``file://`` or ``s3://bucket/prefix`` (the S3 endpoint
    and region from ``settings``); an unreachable bucket raises ValueError (one line)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalFileStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        from mdr_reporting.files.s3 import S3FileStore
        from mdr_reporting.objectstore import S3Location

        return S3FileStore(S3Location.parse(url, settings))
    raise ValueError(f"files_url {url!r}: only file:// and s3:// report stores are available")
