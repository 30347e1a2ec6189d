"""Opening a report through its signed link: the checks behind ``GET /reports/{id}/download``.

Every refusal is a :class:`Forbidden` (403): a tampered, expired or foreign link, a
deleted or expired request, or a file that is gone. The signature is checked before
anything is looked up, and no bytes are read before all checks pass.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

from mdr_reporting.catalog.store import Catalog
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.errors import Forbidden
from mdr_reporting.files.base import FileStore
from mdr_reporting.files.formats import file_format
from mdr_reporting.files.signing import LinkRejected, LinkSigner, file_tag

__all__ = [
    "PRESIGN_TTL",
    "OpenedReport",
    "RedirectedReport",
    "ReportDownloads",
    "download_filename",
]

PRESIGN_TTL = timedelta(minutes=5)  # the redirect target only has to outlive the redirect

_UNSAFE = re.compile(r"[^\w.+-]+")  # keeps letters of any script; the header encodes them


@dataclass(frozen=True)
class OpenedReport:
    """An open report file; the caller closes ``stream``."""

    stream: BinaryIO
    size: int
    filename: str
    media_type: str
    etag: str


@dataclass(frozen=True)
class RedirectedReport:
    """A report the store serves itself: the link answers with a redirect to ``location``."""

    location: str


def download_filename(report_name: str, format_name: str) -> str:
    """The report name made safe for every file system, with the format's suffix."""
    stem = _UNSAFE.sub("_", report_name).strip("._") or "report"
    return stem[:200] + file_format(format_name).suffix


class ReportDownloads:
    def __init__(self, catalog: Catalog, files: FileStore, links: LinkSigner) -> None:
        self.catalog = catalog
        self.files = files
        self.links = links

    def open(
        self, request_id: str, expires: str, signature: str, file: str
    ) -> OpenedReport | RedirectedReport:
        try:  # the link alone first: a bad one learns nothing of the catalog
            self.links.verify(request_id, file, expires, signature)
        except LinkRejected as exc:
            raise Forbidden(str(exc)) from None
        found = self.catalog.get_request(request_id)
        if found is None:
            raise Forbidden("this report no longer exists (it may have been deleted)")
        state = found.as_of(self.links.clock())
        if state.status is RequestStatus.EXPIRED:
            raise Forbidden("this report has expired: its file was deleted")
        if state.status is not RequestStatus.COMPLETE or state.file_key is None:
            raise Forbidden(f"this report is not downloadable: its status is {state.status.name}")
        if file_tag(state.file_key) != file:
            raise Forbidden("this link is for an earlier file of this report")
        if not self.files.exists(state.file_key):
            raise Forbidden("this report's file is no longer available")
        presigned = self.files.presigned_url(state.file_key, PRESIGN_TTL)
        if presigned is not None:
            return RedirectedReport(presigned)
        try:
            stream, size = self.files.open(state.file_key)
        except FileNotFoundError:
            raise Forbidden("this report's file is no longer available") from None
        return OpenedReport(
            stream=stream,
            size=size,
            filename=download_filename(state.spec.report_name, state.spec.format),
            media_type=file_format(state.spec.format).media_type,
            etag='"' + hashlib.sha256(state.file_key.encode()).hexdigest()[:32] + '"',
        )
