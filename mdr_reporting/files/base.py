"""The report file store's interface: local folder now, an S3 bucket later (architecture.md).

A file appears under its key atomically: a reader sees the whole file or nothing.
Keys are relative, slash-separated names such as ``<request id>/<token>.csv``.
"""

from __future__ import annotations

import abc
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

__all__ = ["FileStore", "InvalidKey", "StoredFile", "check_key", "content_disposition"]

_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")


class InvalidKey(ValueError):
    """A key that could escape the store (``..``, absolute) or has odd characters."""


def check_key(key: str) -> str:
    if len(key) > 512 or not _KEY.match(key) or ".." in key.split("/"):
        raise InvalidKey(f"invalid file key {key!r}")
    return key


def content_disposition(filename: str) -> str:
    """The Content-Disposition of a download saved as ``filename``: an ASCII fallback and
    the exact name (RFC 6266 / 5987)."""
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@dataclass(frozen=True)
class StoredFile:
    """One complete file as :meth:`FileStore.list` sees it (``modified`` is aware, UTC)."""

    key: str
    modified: datetime
    size: int


class FileStore(abc.ABC):
    """Finished report files by key."""

    @abc.abstractmethod
    def put(self, key: str, source: Path, *, filename: str | None = None) -> int:
        """Move the local file ``source`` under ``key`` atomically; returns its size.

        ``source`` is consumed (moved or copied, then removed).  ``filename`` is the name a
        download saves it as: a store that serves files itself (S3) keeps it as the
        object's Content-Disposition; the service's own downloads name it anyway.
        """

    @abc.abstractmethod
    def open(self, key: str) -> tuple[BinaryIO, int]:
        """A seekable binary stream of the file and its size; FileNotFoundError if absent.

        An open stream stays readable even if the file is deleted meanwhile.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the file; False when it was not there."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a complete file is stored under ``key``."""

    @abc.abstractmethod
    def list(self) -> Iterator[StoredFile]:
        """Every complete file in the store, in no particular order; the orphan sweep's input.

        Files being written (not yet visible under their key) are not listed.
        """

    def copy(self, source_key: str, key: str, scratch: Path) -> int:
        """Store a copy of the file under ``source_key`` under ``key`` (atomically, as
        :meth:`put` does); returns its size.  Each key is then deleted on its own.
        FileNotFoundError when the source is gone.  This default streams the bytes through
        a local file in the folder ``scratch``; stores copy without them where they can."""
        handle, _size = self.open(source_key)
        staging = scratch / f"copy-{Path(check_key(key)).name}"
        with handle, staging.open("wb") as out:
            shutil.copyfileobj(handle, out, 1 << 20)
        return self.put(key, staging)

    def remove_partials(self, older_than: datetime) -> int:  # noqa: ARG002
        """Remove leftovers of puts that died midway, last touched before ``older_than``.

        A store whose puts leave nothing behind when killed (an S3 bucket with a rule
        aborting incomplete multipart uploads) keeps this default. Returns the count.
        """
        return 0

    def presigned_url(self, key: str, ttl: timedelta) -> str | None:  # noqa: ARG002
        """A URL that serves the file for ``ttl`` without the service (an S3 presigned GET),
        or None when the service streams the file itself."""
        return None
