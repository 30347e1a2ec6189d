"""The v2 legacy surface the carrier's SDKs call: ``{"data": ...}`` and string enums."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from mdr_reporting.api.common import (
    UNKNOWN_ACCOUNT,
    Surface,
    error_responses,
    json_body,
    reports_key,
)
from mdr_reporting.api.examples import V2_EXAMPLE
from mdr_reporting.api.schemas import V2CreateBody, V2Envelope, V2ListEnvelope
from mdr_reporting.api.views import v2_view
from mdr_reporting.catalog import ApiKey
from mdr_reporting.domain.requests import parse_v2

__all__ = ["router"]

router = APIRouter(
    prefix="/v2/legacy/reporting/batch_detail_records/messaging",
    tags=["MDR requests (v2 legacy)"],
)
V2 = Surface("v2", parse_v2, v2_view)


@router.post(
    "",
    summary="Create an MDR request (v2 legacy)",
    responses={
        200: {"model": V2Envelope},
        **error_responses(400, 401, 403, 409, 413, 429),
        404: UNKNOWN_ACCOUNT,
    },
    openapi_extra=json_body(V2CreateBody, V2_EXAMPLE),
)
async def create(request: Request, key: ApiKey = Depends(reports_key)) -> JSONResponse:
    """The v1 create in the v2 legacy shape the carrier's SDKs call: `start_time` and
    `end_time` are both required, `directions` are integers (1 inbound, 2 outbound),
    unknown fields are ignored, and the answer is wrapped in `{"data": ...}`."""
    return JSONResponse({"data": await V2.create(request, key)})


@router.get(
    "",
    summary="List MDR requests (v2 legacy), newest first",
    responses={200: {"model": V2ListEnvelope}, **error_responses(400, 401, 403)},
)
async def list_requests(
    request: Request,
    key: ApiKey = Depends(reports_key),
    page_number: int = Query(1, alias="page[number]", ge=1, le=1_000_000),
    page_size: int = Query(20, alias="page[size]", ge=1, le=250),
) -> JSONResponse:
    """The key's requests, newest first, in `{"data": [...], "meta": {...}}` pages."""
    items, total = await V2.page(
        request, key, offset=(page_number - 1) * page_size, limit=page_size
    )
    meta = {
        "page_number": page_number,
        "page_size": page_size,
        "total_pages": (total + page_size - 1) // page_size,
        "total_results": total,
    }
    return JSONResponse({"data": items, "meta": meta})


@router.get(
    "/{request_id}",
    summary="Retrieve an MDR request (v2 legacy)",
    responses={200: {"model": V2Envelope}, **error_responses(401, 403, 404)},
)
async def get(
    request_id: str, request: Request, key: ApiKey = Depends(reports_key)
) -> JSONResponse:
    """One request in `{"data": ...}`; `status` is PENDING, COMPLETE (with `report_url`),
    FAILED or EXPIRED. Another account's id is a 404, like an unknown one."""
    return JSONResponse({"data": await V2.get(request, key, request_id)})


@router.delete(
    "/{request_id}",
    summary="Delete an MDR request (v2 legacy)",
    responses={200: {"model": V2Envelope}, **error_responses(401, 403, 404)},
)
async def delete(
    request_id: str, request: Request, key: ApiKey = Depends(reports_key)
) -> JSONResponse:
    """Delete a request and its report file (a build in progress is cancelled); the answer
    is `{"data": <the deleted object>}`."""
    return JSONResponse({"data": await V2.delete(request, key, request_id)})
