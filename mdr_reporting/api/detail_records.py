"""``GET /v2/detail_records``: message detail record search, as the carrier's SDK calls it
(``client.detail_records.list``).  The work is the search package's; this is the edge."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mdr_reporting.api.common import error_responses, reports_key
from mdr_reporting.catalog import ApiKey
from mdr_reporting.search import PARAMETERS, RecordSearchService, parse_search

__all__ = ["router"]

router = APIRouter(prefix="/v2/detail_records", tags=["Detail record search"])


class MessageDetailRecord(BaseModel):
    """One message in its latest version, in the SDK's ``MessageDetailRecord`` names
    (plus ``connection_id`` and ``media_size_bytes``); money is an exact decimal string."""

    model_config = ConfigDict(extra="forbid")

    record_type: Literal["message_detail_record"]
    uuid: str = Field(description="The message id")
    user_id: str = Field(description="The account the message belongs to")
    created_at: str
    updated_at: str
    sent_at: str | None
    completed_at: str | None
    direction: Literal["inbound", "outbound"]
    cli: str
    cld: str
    message_type: str
    parts: int
    status: Literal["delivered", "dlr_unconfirmed", "received", "failed", "gw_reject"] | None = (
        Field(description="The carrier's spelling of a final status; null while not final")
    )
    message_status: str = Field(description="The status in this service's words (api.md §6)")
    errors: list[str] = Field(description="The record's error code, when it has one")
    carrier: str | None
    mcc: str | None
    mnc: str | None
    country_code: str | None
    connection_id: str | None
    profile_id: str | None
    tags: str | None = Field(description="The record's tags joined with commas")
    rate: str | None
    cost: str | None
    currency: str
    media_size_bytes: int | None


class SearchMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page_number: int
    page_size: int
    total_pages: int
    total_results: int
    total_exact: bool = Field(
        description="False when the search stopped one record past this page: the totals "
        "then count up to that record (another page follows)"
    )


class DetailRecordList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: list[MessageDetailRecord]
    meta: SearchMeta


def _service(request: Request) -> RecordSearchService:
    state = request.app.state
    service: RecordSearchService | None = getattr(state, "record_search", None)
    if service is None:
        lake = state.services.lake
        if lake is None:
            raise RuntimeError("the record search needs the lake")
        service = RecordSearchService(lake)
        state.record_search = service
    return service


@router.get(
    "",
    summary="Search message detail records (newest first)",
    description="The latest version of each message of the key's account and the accounts "
    "it manages. Filters combine with AND; number matches follow the report filters' rules.",
    responses={200: {"model": DetailRecordList}, **error_responses(400, 401, 403, 429)},
    openapi_extra={"parameters": PARAMETERS},
)
async def list_records(request: Request, key: ApiKey = Depends(reports_key)) -> JSONResponse:
    services = request.app.state.services
    search = parse_search(request.query_params.multi_items(), services.clock())
    service = _service(request)

    def run() -> dict[str, object]:
        accounts = services.catalog.managed_accounts(key.account_id)
        return service.envelope(accounts, search)

    return JSONResponse(await run_in_threadpool(run))
