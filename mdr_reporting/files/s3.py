"""The file store on an S3 bucket: multipart upload, visible under its key only when whole.

S3 makes an object visible only when its PUT (or the completion of its multipart
upload) succeeds, so ``put`` is atomic without a staging key.  Downloads go through
the service's own signed link, which answers with a redirect to a short-lived
presigned GET (:meth:`S3FileStore.presigned_url`): the bytes never pass through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, cast

import obstore

from mdr_reporting.domain.enums import FORMATS
from mdr_reporting.files.base import FileStore, StoredFile, check_key, content_disposition
from mdr_reporting.files.formats import file_format
from mdr_reporting.objectstore import S3Location, S3Reader, check_reachable, connect

__all__ = ["MULTIPART_CHUNK", "S3FileStore"]

MULTIPART_CHUNK = 16 * 1024 * 1024  # parts of a multipart upload; one PUT below this size
UPLOAD_CONCURRENCY = 4


class S3FileStore(FileStore):
    """Report files under ``s3://bucket/prefix/<key>``."""

    def __init__(self, location: S3Location, *, check: bool = True) -> None:
        self.location = location
        self.store = connect(location)
        if check:
            check_reachable(self.store, location)

    def put(self, key: str, source: Path, *, filename: str | None = None) -> int:
        check_key(key)
        size = source.stat().st_size
        # obstore switches to a multipart upload past chunk_size; an aborted one leaves
        # no object under the key (S3 completes it atomically or not at all).
        attributes: dict[str, str] = {}
        media = _media_type(key)
        if media:
            attributes["Content-Type"] = media
        if filename:  # the presigned GET answers with it, as the service's downloads do
            attributes["Content-Disposition"] = content_disposition(filename)
        obstore.put(
            self.store,
            key,
            source,
            attributes=attributes or None,
            chunk_size=MULTIPART_CHUNK,
            max_concurrency=UPLOAD_CONCURRENCY,
        )
        source.unlink()
        return size

    def copy(self, source_key: str, key: str, scratch: Path) -> int:  # noqa: ARG002
        """A server-side copy (CopyObject): the bytes never leave the bucket."""
        check_key(key)
        try:
            size = int(obstore.head(self.store, check_key(source_key))["size"])
            obstore.copy(self.store, source_key, key)
        except FileNotFoundError:
            raise FileNotFoundError(source_key) from None
        return size

    def open(self, key: str) -> tuple[BinaryIO, int]:
        try:
            reader = S3Reader(self.store, check_key(key))
        except FileNotFoundError:
            raise FileNotFoundError(key) from None
        return cast(BinaryIO, reader), reader.size

    def delete(self, key: str) -> bool:
        if not self.exists(key):
            return False
        obstore.delete(self.store, key)
        return True

    def exists(self, key: str) -> bool:
        try:
            obstore.head(self.store, check_key(key))
        except FileNotFoundError:
            return False
        return True

    def list(self) -> Iterator[StoredFile]:
        """Every stored object (multipart uploads in progress are not objects yet)."""
        for chunk in obstore.list(self.store, chunk_size=1000):
            for meta in chunk:
                yield StoredFile(meta["path"], meta["last_modified"], meta["size"])

    def presigned_url(self, key: str, ttl: timedelta) -> str | None:
        return obstore.sign(self.store, "GET", check_key(key), ttl)


def _media_type(key: str) -> str | None:
    """The report format's media type, from the key's suffix, for the presigned GET."""
    matches = [file_format(f) for f in FORMATS if key.endswith(file_format(f).suffix)]
    return max(matches, key=lambda f: len(f.suffix)).media_type if matches else None
