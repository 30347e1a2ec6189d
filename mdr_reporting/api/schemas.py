"""Pydantic models that document the real shapes in /openapi.json.

Validation of request bodies is the domain's (it knows every rule and pointer);
these models describe the wire format, and the tests check that every real
response validates against them, so the document cannot drift from the code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ErrorEnvelope",
    "V1CreateBody",
    "V1Request",
    "V2CreateBody",
    "V2Envelope",
    "V2ListEnvelope",
]

Format = Literal["csv", "csv.gz", "jsonl.gz", "parquet"]
Match = Literal["contains", "starts_with", "ends_with"]


def _complete_only() -> list[Literal[1, 2, 3]]:
    return [1]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FilterObject(_Strict):
    """One criterion; the first filter must be `and`, and no `and` may follow an `or`."""

    filter_type: Literal["and", "or"]
    cli: str | None = Field(None, description="Calling number (sender) to match")
    cli_filter: Match | None = None
    cld: str | None = Field(None, description="Called number (recipient) to match")
    cld_filter: Match | None = None
    tags_list: list[str] | str | None = Field(None, description="Matches any of these tags")


class _Extensions(_Strict):
    include_message_body: bool = False
    format: Format = "csv"
    webhook_url: str | None = Field(None, description="http(s) URL POSTed the final object")
    managed_accounts: list[str] = Field(default_factory=list)
    select_all_managed_accounts: bool = False


class V1CreateBody(_Extensions):
    """Body of POST /reporting/mdr_requests; unknown fields are rejected with 400."""

    start_time: str = Field(..., description="ISO 8601; naive times are read in `timezone`")
    end_time: str | None = Field(None, description="ISO 8601, exclusive; default: now")
    timezone: str = Field("UTC", description="IANA time zone name")
    call_types: list[Literal[1, 2]] | None = Field(None, description="1 inbound, 2 outbound")
    directions: list[str] = Field(default_factory=list, description="inbound / outbound")
    record_types: list[Literal[1, 2, 3]] = Field(
        default_factory=_complete_only, description="1 Complete, 2 Incomplete, 3 Errors"
    )
    connections: list[str | int] = Field(default_factory=list)
    profiles: list[str] = Field(default_factory=list)
    report_name: str | None = Field(None, min_length=1, max_length=255)
    filters: list[FilterObject | str] = Field(
        default_factory=list, description="Objects or JSON-encoded strings of objects"
    )


class _ResponseExtensions(_Strict):
    record_count: int | None
    size_bytes: int | None
    expires_at: str | None
    progress: float
    format: Format
    include_message_body: bool
    webhook_url: str | None
    managed_accounts: list[str]
    select_all_managed_accounts: bool
    accounts: list[str] = Field(description="Every account whose records the report covers")
    error: str | None
    warnings: list[str]
    engine: str | None = Field(
        description="The engine that built the report (duckdb or spark); null until built"
    )


class V1Request(_ResponseExtensions):
    """An MDR request, v1 view."""

    id: str
    start_time: str
    end_time: str
    timezone: str
    call_types: list[int]
    directions: list[str]
    record_types: list[int]
    connections: list[str]
    profiles: list[str]
    report_name: str
    filters: str = Field(description="The filters, normalised and JSON-encoded")
    status: Literal[1, 2, 3, 4] = Field(description="1 Pending, 2 Complete, 3 Failed, 4 Expired")
    report_url: str | None
    created_at: str
    updated_at: str


class V2CreateBody(BaseModel):
    """Body of the v2 legacy create; unknown fields are ignored on this surface."""

    start_time: str
    end_time: str
    timezone: str = "UTC"
    directions: list[Literal[1, 2]] = Field(default_factory=list)
    record_types: list[Literal[1, 2, 3]] = Field(default_factory=_complete_only)
    connections: list[int | str] = Field(default_factory=list)
    profiles: list[str] = Field(default_factory=list)
    filters: list[FilterObject] = Field(default_factory=list)
    include_message_body: bool = False
    report_name: str | None = None
    format: Format = "csv"
    webhook_url: str | None = None
    managed_accounts: list[str] = Field(default_factory=list)
    select_all_managed_accounts: bool = False


class V2Request(_ResponseExtensions):
    """An MDR request, v2 legacy view."""

    id: str
    record_type: Literal["mdr_report"]
    start_date: str
    end_date: str
    timezone: str
    directions: list[Literal["INBOUND", "OUTBOUND"]]
    record_types: list[Literal["COMPLETED", "INCOMPLETE", "ERRORS"]]
    connections: list[int | str]
    profiles: list[str]
    filters: list[FilterObject]
    report_name: str
    report_url: str | None
    status: Literal["PENDING", "COMPLETE", "FAILED", "EXPIRED"]
    created_at: str
    updated_at: str


class V2Envelope(_Strict):
    data: V2Request


class PageMeta(_Strict):
    page_number: int
    page_size: int
    total_pages: int
    total_results: int


class V2ListEnvelope(_Strict):
    data: list[V2Request]
    meta: PageMeta


class ErrorSource(_Strict):
    pointer: str | None = None
    parameter: str | None = None


class ErrorObject(_Strict):
    code: str
    title: str
    detail: str
    source: ErrorSource | None = None


class ErrorEnvelope(_Strict):
    errors: list[ErrorObject]
