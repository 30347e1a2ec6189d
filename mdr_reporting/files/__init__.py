"""Report files: the store (chosen by ``files_url``), formats and signed download links."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from mdr_reporting.files.base import FileStore, InvalidKey, StoredFile
from mdr_reporting.files.formats import FileFormat, file_format
from mdr_reporting.files.local import LocalFileStore
from mdr_reporting.files.signing import LinkSigner, SignedLink

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


def open_file_store(url: str) -> FileStore:
    """The store a ``files_url`` names; only ``file://`` exists so far."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalFileStore(Path(unquote(parsed.path)))
    raise ValueError(f"files_url {url!r}: only file:// report stores are available")
