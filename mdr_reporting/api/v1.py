"""The v1 surface: ``/reporting/mdr_requests`` (bare objects, integer enums)."""

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
from mdr_reporting.api.examples import V1_EXAMPLE
from mdr_reporting.api.schemas import V1CreateBody, V1Request
from mdr_reporting.api.views import v1_view
from mdr_reporting.catalog import ApiKey
from mdr_reporting.domain.requests import parse_v1

__all__ = ["router"]

router = APIRouter(prefix="/reporting/mdr_requests", tags=["MDR requests (v1)"])
V1 = Surface("v1", parse_v1, v1_view)


@router.post(
    "",
    summary="Create an MDR request",
    responses={
        200: {"model": V1Request},
        **error_responses(400, 401, 403, 409, 413, 429),
        404: UNKNOWN_ACCOUNT,
    },
    openapi_extra=json_body(V1CreateBody, V1_EXAMPLE),
)
async def create(request: Request, key: ApiKey = Depends(reports_key)) -> JSONResponse:
    """Ask for a report of the key's account (or accounts it manages). The answer is the
    new request, Pending (`status` 1); it is built in the background: poll it, or give a
    `webhook_url`. Times without an offset are in `timezone`; `end_time` defaults to now.
    The same `Idempotency-Key` within 24 hours returns the first request."""
    return JSONResponse(await V1.create(request, key))


@router.get(
    "",
    summary="List MDR requests, newest first (total in X-Total-Count)",
    responses={200: {"model": list[V1Request]}, **error_responses(400, 401, 403)},
)
async def list_requests(
    request: Request,
    key: ApiKey = Depends(reports_key),
    page: int = Query(1, ge=1, le=1_000_000),
    per_page: int = Query(100, ge=1, le=1000),
) -> JSONResponse:
    """The key's requests (and those of accounts it manages), newest first, as a bare
    array; the total count is in the `X-Total-Count` header."""
    items, total = await V1.page(request, key, offset=(page - 1) * per_page, limit=per_page)
    return JSONResponse(items, headers={"X-Total-Count": str(total)})


@router.get(
    "/{request_id}",
    summary="Retrieve an MDR request",
    responses={200: {"model": V1Request}, **error_responses(401, 403, 404)},
)
async def get(
    request_id: str, request: Request, key: ApiKey = Depends(reports_key)
) -> JSONResponse:
    """One request: `status` 1 Pending (with `progress`), 2 Complete (with `report_url`, a
    signed link valid 3 hours, fresh on every GET), 3 Failed (with `error`), 4 Expired.
    Another account's id is a 404, like an unknown one."""
    return JSONResponse(await V1.get(request, key, request_id))


@router.delete(
    "/{request_id}",
    summary="Delete an MDR request (cancels a build in progress)",
    responses={200: {"model": V1Request}, **error_responses(401, 403, 404)},
)
async def delete(
    request_id: str, request: Request, key: ApiKey = Depends(reports_key)
) -> JSONResponse:
    """Delete a request and its report file; a build in progress is cancelled. The answer
    is the deleted object."""
    return JSONResponse(await V1.delete(request, key, request_id))
