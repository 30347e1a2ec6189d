"""S3 connections shared by the lake and the report file store (obstore: fast, no AWS SDK).

``s3://bucket/prefix`` names a place; the endpoint and region come from the settings
(``s3_endpoint_url``, ``s3_region``) or the standard AWS variables, and credentials from
the standard AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ...), so MinIO, moto or any S3-compatible store works.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import obstore
from obstore.store import S3Store

if TYPE_CHECKING:
    from mdr_reporting.settings import Settings

__all__ = [
    "S3Location",
    "S3Reader",
    "check_reachable",
    "connect",
    "endpoint_and_region",
    "one_line",
]

_CODE = re.compile(r"<Code>(\w+)</Code>")


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (no slashes at either end; may be empty), plus where to go."""

    bucket: str
    prefix: str
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, url: str, settings: Settings | None = None) -> S3Location:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
        endpoint = settings.s3_endpoint_url if settings is not None else None
        region = settings.s3_region if settings is not None else None
        return cls(parsed.netloc, parsed.path.strip("/"), endpoint, region)

    def url(self, key: str) -> str:
        """The full ``s3://`` URL of ``key`` (relative to the prefix)."""
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{key}"

    def key(self, url: str) -> str:
        """The key relative to the prefix of an URL made by :meth:`url`."""
        head = self.url("")
        if not url.startswith(head):
            raise ValueError(f"{url!r} is not under {head!r}")
        return url[len(head) :]


def endpoint_and_region(location: S3Location) -> tuple[str | None, str]:
    """Where the location's bucket is: the settings, else the standard AWS variables
    (no endpoint means AWS itself; the region defaults to us-east-1)."""
    endpoint = (
        location.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    region = (
        location.region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    return endpoint, region


def connect(location: S3Location) -> S3Store:
    """A store rooted at the location's prefix; plain http only for an explicit endpoint."""
    endpoint, region = endpoint_and_region(location)
    config: dict[str, Any] = {"region": region}
    if endpoint:
        config["endpoint"] = endpoint
    return S3Store(
        location.bucket,
        prefix=location.prefix or None,
        config=config,  # type: ignore[arg-type]
        client_options={
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
            "connect_timeout": timedelta(seconds=5),
            "timeout": timedelta(seconds=120),
        },
        retry_config={
            "max_retries": 4,
            "retry_timeout": timedelta(seconds=30),
            "backoff": {"init_backoff": timedelta(milliseconds=100)},
        },
    )


def one_line(exc: BaseException) -> str:
    """obstore's errors span many lines; the S3 error code or the first line is enough."""
    text = str(exc)
    code = _CODE.search(text)
    if code:
        return code.group(1)
    first = text.strip().splitlines()[0] if text.strip() else exc.__class__.__name__
    return first[:200]


def check_reachable(store: S3Store, location: S3Location) -> None:
    """Raise ValueError (one line) unless the bucket answers a listing: checked at start-up;
    callers say what the bucket is for."""
    try:
        next(iter(obstore.list(store, chunk_size=1)), None)
    except Exception as exc:
        where = location.endpoint_url or "the AWS endpoint"
        raise ValueError(
            f"S3 bucket {location.bucket!r} at {where} is not reachable: {one_line(exc)}"
        ) from None


class S3Reader(io.RawIOBase):
    """A seekable binary stream over one object (ranged GETs through obstore's reader)."""

    def __init__(self, store: S3Store, key: str) -> None:
        super().__init__()
        self._file = obstore.open_reader(store, key)
        self.size = int(self._file.size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._file.seek(offset, whence))

    def tell(self) -> int:
        return int(self._file.tell())

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return bytes(self._file.read())
        return bytes(self._file.read(size))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()
