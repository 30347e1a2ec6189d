"""``/v2/reports/mdr_usage_reports``: MDR usage reports as the carrier's SDK calls them
(``client.reports.mdr_usage_reports.create / retrieve / list / delete / fetch_sync``).
The work is the usage package's; this is the edge."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.convertors import StringConvertor, register_url_convertor

from mdr_reporting.api.body import read_json
from mdr_reporting.api.common import error_responses, reports_key
from mdr_reporting.catalog import ApiKey, KeyScope
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.errors import NotFound
from mdr_reporting.usage import (
    UsageService,
    UsageStore,
    parse_create_body,
    parse_fetch_params,
    render_report,
    render_stored,
)
from mdr_reporting.usage.params import create_schema, fetch_parameters

__all__ = ["router"]

router = APIRouter(prefix="/v2/reports/mdr_usage_reports", tags=["MDR usage reports"])


class _ReportId(StringConvertor):
    """A usage report id: any path segment but ``sync`` (fetch_sync's own resource), so
    ``/sync`` answers only GET and its ``Allow`` header says so."""

    regex = "(?!sync$)[^/]+"


register_url_convertor("usage_report_id", _ReportId())


class UsageResult(BaseModel):
    """One group and direction (and currency): counts and the exact cost, as strings."""

    model_config = ConfigDict(extra="forbid")

    direction: Literal["inbound", "outbound"]
    profile_id: str | None = Field(None, description="PROFILE: the group's profile")
    tags: str | None = Field(None, description="TAGS: the group's tag")
    sent: str = Field(description="Outbound messages")
    delivered: str = Field(description="Outbound messages with status delivered")
    received: str = Field(description="Inbound messages")
    parts: str
    cost: str = Field(description="Exact decimal, 6 places")
    currency: str


class MdrUsageReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(description="null for fetch_sync, which stores nothing")
    record_type: Literal["mdr_usage_report"]
    aggregation_type: Literal["NO_AGGREGATION", "PROFILE", "TAGS"]
    start_date: str
    end_date: str
    profiles: str | None
    connections: list[int]
    status: Literal["PENDING", "COMPLETE", "FAILED", "EXPIRED"]
    result: list[UsageResult]
    report_url: None
    error: str | None
    created_at: str
    updated_at: str


class UsageEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: MdrUsageReport


class UsagePageMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page_number: int
    page_size: int
    total_pages: int
    total_results: int


class UsageListEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: list[MdrUsageReport]
    meta: UsagePageMeta


def _parts(request: Request) -> tuple[Any, UsageStore, UsageService]:
    """The services, the usage reports' catalog store and the lake's usage service (only
    ``fetch_sync`` reads the lake: the others work on stored reports)."""
    state = request.app.state
    services = state.services
    store: UsageStore | None = getattr(state, "usage_store", None)
    if store is None:
        store = state.usage_store = UsageStore(services.catalog)
    service: UsageService | None = getattr(state, "usage_service", None)
    if service is None and services.lake is not None:
        service = state.usage_service = UsageService(services.lake)
    if service is None:
        return services, store, _NO_LAKE
    return services, store, service


class _NoLake:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("usage reports read the lake: this server has none")


_NO_LAKE: Any = _NoLake()


def _visible(services: Any, key: ApiKey) -> list[str] | None:
    """The accounts whose usage reports ``key`` sees (admin: every account)."""
    if key.scope is KeyScope.ADMIN:
        return None
    accounts: list[str] = services.catalog.managed_accounts(key.account_id)
    return accounts


@router.get(
    "/sync",
    summary="Compute an MDR usage report at once",
    description=(
        "Counts sent, delivered and received messages, parts and cost per group and "
        "direction over the window, from the lake's latest versions, and answers at once "
        "without storing anything (the SDK's `mdr_usage_reports.fetch_sync`). Costs are "
        "exact decimal strings. Without dates it covers the last 30 days."
    ),
    responses={200: {"model": UsageEnvelope}, **error_responses(400, 401, 403, 429)},
    openapi_extra={"parameters": fetch_parameters()},
)
async def fetch_sync(request: Request, key: ApiKey = Depends(reports_key)) -> JSONResponse:
    services, _store, service = _parts(request)
    now = services.clock()
    query = parse_fetch_params(request.query_params.multi_items(), now)

    def run() -> dict[str, Any]:
        accounts = services.catalog.managed_accounts(key.account_id)
        result = service.result(accounts, query)
        return render_report(
            query,
            report_id=None,
            status=RequestStatus.COMPLETE,
            result=result,
            created_at=now,
            updated_at=services.clock(),
        )

    return JSONResponse({"data": await run_in_threadpool(run)})


@router.post(
    "",
    summary="Create an MDR usage report (computed in the background)",
    description=(
        "Stores a PENDING usage report that a worker computes between report builds; "
        "`retrieve` shows it COMPLETE with its `result` (the same rows `fetch_sync` "
        "answers) or FAILED with its `error`. `end_date` is inclusive."
    ),
    responses={200: {"model": UsageEnvelope}, **error_responses(400, 401, 403, 413, 429)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": create_schema(),
                    "example": {
                        "aggregation_type": "PROFILE",
                        "start_date": "2026-11-01",
                        "end_date": "2026-11-30",
                    },
                }
            },
        }
    },
)
async def create(request: Request, key: ApiKey = Depends(reports_key)) -> JSONResponse:
    services, store, _service = _parts(request)
    query = parse_create_body(await read_json(request), services.clock())

    def run() -> dict[str, Any]:
        accounts = services.catalog.managed_accounts(key.account_id)
        return render_stored(store.create(key.account_id, accounts, query))

    return JSONResponse({"data": await run_in_threadpool(run)})


@router.get(
    "",
    summary="List MDR usage reports, newest first",
    description=(
        "The usage reports created with the key's account or an account it manages, "
        "newest first, a page at a time, with the v2 `meta` block."
    ),
    responses={200: {"model": UsageListEnvelope}, **error_responses(400, 401, 403, 429)},
)
async def list_reports(
    request: Request,
    key: ApiKey = Depends(reports_key),
    page_number: int = Query(1, alias="page[number]", ge=1, le=1_000_000),
    page_size: int = Query(20, alias="page[size]", ge=1, le=250),
) -> JSONResponse:
    services, store, _service = _parts(request)

    def run() -> dict[str, Any]:
        items, total = store.page(
            _visible(services, key), offset=(page_number - 1) * page_size, limit=page_size
        )
        return {
            "data": [render_stored(item) for item in items],
            "meta": {
                "page_number": page_number,
                "page_size": page_size,
                "total_pages": (total + page_size - 1) // page_size,
                "total_results": total,
            },
        }

    return JSONResponse(await run_in_threadpool(run))


@router.get(
    "/{report_id:usage_report_id}",
    summary="Retrieve an MDR usage report",
    description=(
        "One usage report by id: its status and, once COMPLETE, its result rows. A report "
        "of another account is a 404, as if it did not exist."
    ),
    responses={200: {"model": UsageEnvelope}, **error_responses(401, 403, 404, 429)},
)
async def retrieve(
    report_id: str, request: Request, key: ApiKey = Depends(reports_key)
) -> JSONResponse:
    services, store, _service = _parts(request)
    found = await run_in_threadpool(store.get, report_id, _visible(services, key))
    if found is None:
        raise NotFound(f"no MDR usage report with id {report_id!r}")
    return JSONResponse({"data": render_stored(found)})


@router.delete(
    "/{report_id:usage_report_id}",
    summary="Delete an MDR usage report",
    description=(
        "Deletes a usage report (a PENDING one is never computed) and answers it as it was; "
        "a report of another account is a 404."
    ),
    responses={200: {"model": UsageEnvelope}, **error_responses(401, 403, 404, 429)},
)
async def delete(
    report_id: str, request: Request, key: ApiKey = Depends(reports_key)
) -> JSONResponse:
    services, store, _service = _parts(request)
    found = await run_in_threadpool(store.delete, report_id, _visible(services, key))
    if found is None:
        raise NotFound(f"no MDR usage report with id {report_id!r}")
    return JSONResponse({"data": render_stored(found)})
