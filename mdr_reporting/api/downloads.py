"""``GET /reports/{id}/download``: the signed link of ``report_url``; no Authorization header.

The file is streamed in chunks from the store (never read whole into memory), with
single-range support so an interrupted download resumes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mdr_reporting.api.errors import error_response
from mdr_reporting.api.ranges import RangeNotSatisfiable, parse_range
from mdr_reporting.api.schemas import ErrorEnvelope
from mdr_reporting.domain.enums import FORMATS
from mdr_reporting.domain.errors import ErrorItem, NotFound
from mdr_reporting.files.base import content_disposition
from mdr_reporting.files.downloads import OpenedReport, RedirectedReport
from mdr_reporting.files.formats import file_format

__all__ = ["router"]

CHUNK = 256 * 1024

router = APIRouter(tags=["Report files"])


async def _chunks(stream: BinaryIO, first: int, length: int) -> AsyncIterator[bytes]:
    try:
        await run_in_threadpool(stream.seek, first)
        remaining = length
        while remaining > 0:
            chunk = await run_in_threadpool(stream.read, min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        stream.close()


def _headers(report: OpenedReport) -> dict[str, str]:
    return {
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(report.filename),
        "ETag": report.etag,
        "Cache-Control": "private, no-transform",
    }


PATH = "/reports/{request_id}/download"
# Each format's media type, as the response's Content-Type names it (one per format).
_FILE_CONTENT: dict[str, Any] = {
    media: {"schema": {"type": "string", "format": "binary"}}
    for media in sorted({file_format(name).media_type.split(";")[0] for name in FORMATS})
}


@router.get(
    PATH,
    response_class=StreamingResponse,
    summary="Download a finished report through its signed link (report_url)",
    openapi_extra={"security": []},  # the signature is the credential: no API key
    responses={
        200: {"description": "The report file", "content": _FILE_CONTENT},
        206: {"description": "The requested byte range (Range header)", "content": _FILE_CONTENT},
        307: {
            "description": "The file store serves the file: a short-lived presigned GET",
            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
        },
        403: {
            "model": ErrorEnvelope,
            "description": "Tampered, expired or foreign link, or a deleted or expired report",
        },
        404: {"model": ErrorEnvelope, "description": "This process does not serve report files"},
        416: {"model": ErrorEnvelope, "description": "The Range misses the file"},
    },
)
async def download(
    request_id: str,
    request: Request,
    expires: str = Query("", description="Expiry of the link (unix seconds)"),
    sig: str = Query("", description="Signature of the link"),
    file: str = Query("", description="Which file of the report the link is for"),
) -> Response:
    """The file of a Complete report, by the signed `report_url` alone (no API key).
    `Range` requests resume a broken download (206); an S3 file store answers with a
    redirect to a short-lived presigned GET."""
    downloads = request.app.state.services.downloads
    if downloads is None:
        raise NotFound("report files are not served by this process")
    report: OpenedReport | RedirectedReport = await run_in_threadpool(
        downloads.open, request_id, expires, sig, file
    )
    if isinstance(report, RedirectedReport):
        # The presigned GET answers Range requests itself; clients keep the header.
        return RedirectResponse(report.location, status_code=307)
    headers = _headers(report)
    if_range = request.headers.get("if-range")
    range_header = request.headers.get("range")
    if if_range is not None and if_range.strip() != report.etag:
        range_header = None  # the client holds another version: send the whole file
    try:
        wanted = parse_range(range_header, report.size)
    except RangeNotSatisfiable:
        report.stream.close()
        headers["Content-Range"] = f"bytes */{report.size}"
        item = ErrorItem(
            "range_not_satisfiable",
            "Range not satisfiable",
            f"the Range {range_header!r} misses the file of {report.size} bytes",
        )
        return error_response(416, [item], headers)
    first, last = wanted if wanted is not None else (0, report.size - 1)
    length = last - first + 1
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{report.size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        report.stream.close()
        return Response(status_code=status, headers=headers, media_type=report.media_type)
    return StreamingResponse(
        _chunks(report.stream, first, length),
        status_code=status,
        headers=headers,
        media_type=report.media_type,
    )


router.add_api_route(PATH, download, methods=["HEAD"], include_in_schema=False)
