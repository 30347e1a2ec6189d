"""Pydantic models that document the real shapes in /openapi.json.

Validation of request bodies is the domain's (it knows every rule and pointer);
these models describe the wire format, and the tests check that every real
response validates against them, so the document cannot drift from the code.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mdr_reporting.domain.enums import DIRECTIONS, FORMATS
from mdr_reporting.domain.filters import MATCHES
from mdr_reporting.domain.limits import (
    MAX_FILTERS,
    MAX_ID_LENGTH,
    MAX_LIST_ITEMS,
    MAX_TAGS_PER_FILTER,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
    PLAIN_CHAR,
    TEXT_PATTERN,
)
from mdr_reporting.domain.requests import JSON_INT_RANGE
from mdr_reporting.domain.times import INSTANT_PATTERN, RECORD_TIME_PATTERN, zone_names
from mdr_reporting.domain.validation import MAX_ID_LENGTH as MAX_RECORD_ID_LENGTH
from mdr_reporting.domain.validation import MESSAGE_TYPES, STATUSES

__all__ = [
    "ErrorEnvelope",
    "MdrRecord",
    "V1CreateBody",
    "V1Request",
    "V2CreateBody",
    "V2Envelope",
    "V2ListEnvelope",
]

Format = Literal["csv", "csv.gz", "jsonl.gz", "parquet"]
Match = Literal["contains", "starts_with", "ends_with"]


def _any_case(*words: str, pad: str = "") -> str:
    """A pattern matching exactly ``words`` in any letter case (the domain folds case),
    with ``pad`` (e.g. optional white space, which the domain trims) either side."""

    def spell(word: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)

    return f"^{pad}(" + "|".join(spell(w) for w in words) + f"){pad}$"


# The shapes the domain accepts, in JSON Schema terms; every number comes from the domain.
Instant = Annotated[
    str,
    Field(
        pattern=INSTANT_PATTERN,
        description="ISO 8601 date or date-time; without an offset it is read in `timezone`",
    ),
]
ZoneName = Annotated[
    str, Field(description="IANA time zone name", json_schema_extra={"enum": zone_names()})
]
# Every string of a body is plain text (no control character): TEXT_PATTERN, combined
# with each string's own rule where it has one.
_PLAIN_NOT_SPACE = PLAIN_CHAR[:-1] + r"\s]"
_PLAIN_SPACE = "[^\\S" + PLAIN_CHAR[2:]  # white space that is not a control character
Identifier = Annotated[
    str,
    Field(
        pattern=f"^{PLAIN_CHAR}*{_PLAIN_NOT_SPACE}{PLAIN_CHAR}*$",
        max_length=MAX_ID_LENGTH,
        description="Not blank; trimmed",
    ),
]
IdList = Annotated[list[Identifier], Field(max_length=MAX_LIST_ITEMS)]
# JSON integers a connection id may be given as: what a 64-bit parser reads as an integer.
ConnectionNumber = Annotated[int, Field(ge=JSON_INT_RANGE[0], le=JSON_INT_RANGE[1])]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH, pattern=TEXT_PATTERN)]
Number = Annotated[
    str,
    Field(
        pattern=f"^([^+{PLAIN_CHAR[2:-1]}]|\\+{PLAIN_CHAR}){PLAIN_CHAR}*$",
        max_length=MAX_TEXT_LENGTH,
        description="Number or sender id to match; one leading + is ignored",
    ),
]
FilterType = Annotated[
    str,
    Field(pattern=_any_case("and", "or"), description="`and` or `or` (any case)"),
]
MatchKind = Annotated[str, Field(pattern=_any_case(*MATCHES), description=" / ".join(MATCHES))]
FormatName = Annotated[str, Field(pattern=_any_case(*FORMATS), description=" / ".join(FORMATS))]
DirectionName = Annotated[
    str,
    Field(pattern=_any_case(*DIRECTIONS, pad=_PLAIN_SPACE + "*"), description="Any case"),
]
WebhookUrl = Annotated[
    str,
    Field(
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~%!$&'()*+,;=:@-]+([/?#][\x21-\x7e]*)?$",
        max_length=MAX_URL_LENGTH,
        description=(
            "Absolute http(s) URL POSTed the request object, signed, when it reaches status "
            "2, 3 or 4. A host that is or resolves to a loopback, private, link-local, "
            "metadata, unspecified, multicast or reserved address is refused (400)"
        ),
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Filter(_Strict):
    filter_type: FilterType


class CliFilter(_Filter):
    """Calling number (sender) criterion."""

    cli: Number
    cli_filter: MatchKind


class CldFilter(_Filter):
    """Called number (recipient) criterion."""

    cld: Number
    cld_filter: MatchKind


class TagsFilter(_Filter):
    """Matches a record carrying any of these tags (a single string is one tag)."""

    tags_list: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_TAGS_PER_FILTER)]


Filters = Annotated[
    list[CliFilter | CldFilter | TagsFilter],
    Field(
        max_length=MAX_FILTERS,
        description="Read left to right: the first filter must be `and`, and no `and` may "
        "follow an `or`. Items may also be JSON-encoded strings of these objects.",
    ),
]


class FilterView(_Strict):
    """One criterion as a response shows it (normalised)."""

    filter_type: Literal["and", "or"]
    cli: str | None = None
    cli_filter: Match | None = None
    cld: str | None = None
    cld_filter: Match | None = None
    tags_list: list[str] | None = None


class _CreateBody(BaseModel):
    """Fields both create bodies spell alike; ``null`` means the default."""

    timezone: ZoneName | None = "UTC"
    record_types: (
        Annotated[list[Literal[1, 2, 3]], Field(min_length=1, max_length=MAX_LIST_ITEMS)] | None
    ) = Field(None, description="1 Complete, 2 Incomplete, 3 Errors; default [1]")
    connections: (
        Annotated[list[Identifier | ConnectionNumber], Field(max_length=MAX_LIST_ITEMS)] | None
    ) = None
    profiles: IdList | None = None
    report_name: Text | None = Field(None, description="Default: derived from the window")
    filters: Filters | None = None
    include_message_body: bool | None = False
    format: FormatName | None = "csv"
    webhook_url: WebhookUrl | None = None
    managed_accounts: IdList | None = Field(
        None, description="Accounts this key's account manages, to include"
    )
    select_all_managed_accounts: bool | None = False


class V1CreateBody(_CreateBody):
    """Body of POST /reporting/mdr_requests; unknown fields are rejected with 400.

    `end_time` must be after `start_time` (and `start_time` in the past when `end_time`
    is omitted); `call_types` and `directions`, when both given, name the same set.
    """

    model_config = ConfigDict(extra="forbid")

    start_time: Instant = Field(examples=["2024-02-21T00:00:00"])
    end_time: Instant | None = Field(
        None, description="Exclusive; default: now", examples=["2024-02-22T00:00:00"]
    )
    call_types: Annotated[list[Literal[1, 2]], Field(max_length=MAX_LIST_ITEMS)] | None = Field(
        None, description="1 inbound, 2 outbound"
    )
    directions: Annotated[list[DirectionName], Field(max_length=MAX_LIST_ITEMS)] | None = Field(
        None, description="inbound / outbound (any case); empty: all"
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
    queue_position: int | None = Field(
        description="While Pending and queued: requests a worker will take before this one "
        "(0: next); null otherwise"
    )
    started_at: str | None = Field(
        description="When the current (or last) build began; null while queued"
    )
    estimated_completion_at: str | None = Field(
        description="While building: when the build should end at its rate so far; null "
        "before the first progress and once it is no longer building"
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


class V2CreateBody(_CreateBody):
    """Body of the v2 legacy create; unknown fields are ignored on this surface.

    `end_time` must be after `start_time`.
    """

    model_config = ConfigDict(extra="allow")

    start_time: Instant = Field(examples=["2024-02-21T00:00:00Z"])
    end_time: Instant = Field(examples=["2024-02-22T00:00:00Z"])
    directions: Annotated[list[Literal[1, 2]], Field(max_length=MAX_LIST_ITEMS)] | None = Field(
        None, description="1 inbound, 2 outbound; empty: all"
    )


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
    filters: list[FilterView]
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


class ErrorMeta(_Strict):
    """Where a bad record is (ingest): its 1-based line, the field and the reason."""

    line: int
    field: str
    reason: str


class ErrorObject(_Strict):
    code: str
    title: str
    detail: str
    source: ErrorSource | None = None
    meta: ErrorMeta | None = None


class ErrorEnvelope(_Strict):
    errors: list[ErrorObject]


# -- records in (api.md section 13) ------------------------------------------------------

RecordTime = Annotated[str, Field(pattern=RECORD_TIME_PATTERN, description="ISO 8601 with offset")]
RecordId = Annotated[str, Field(min_length=1, max_length=MAX_RECORD_ID_LENGTH)]
Money = Annotated[
    str,
    Field(pattern=r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$", description="Exact decimal, at most 6 places"),
]
WholeMoney = Annotated[int, Field(ge=-(10**12) + 1, le=10**12 - 1)]


class MdrRecord(_Strict):
    """One message detail record; ``null`` means absent. Unknown fields are rejected."""

    id: RecordId = Field(description="Message id; a later `updated_at` replaces a version")
    account_id: RecordId = Field(description="An account the key may write")
    created_at: RecordTime
    updated_at: RecordTime | None = Field(None, description="Default: latest of the times")
    sent_at: RecordTime | None = None
    completed_at: RecordTime | None = None
    direction: Annotated[str, Field(pattern=_any_case(*DIRECTIONS))]
    cli: Annotated[str, Field(min_length=1)]
    cld: Annotated[str, Field(min_length=1)]
    message_type: Annotated[str, Field(pattern=_any_case(*MESSAGE_TYPES))] | None = None
    parts: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    status: Annotated[str, Field(pattern=_any_case(*STATUSES))]
    error_code: str | None = None
    carrier: str | None = None
    mcc: str | None = None
    mnc: str | None = None
    country_code: str | None = None
    connection_id: str | None = None
    profile_id: str | None = None
    tags: list[str] | None = None
    rate: Money | WholeMoney | None = None
    cost: Money | WholeMoney | None = None
    currency: Annotated[str, Field(pattern="^[A-Za-z]{3}$")] | None = None
    media_size_bytes: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    message_body: str | None = None


# -- completion webhooks (api.md sections 10 and 12) --------------------------------------


class WebhookPublicKey(_Strict):
    """The key that verifies the ``webhook-signature`` header of every webhook."""

    algorithm: Literal["ed25519"]
    key_id: str = Field(description="A fingerprint of the key (changes when the key does)")
    public_key: str = Field(description="Base64 of the raw 32-byte Ed25519 public key")
    public_key_pem: str = Field(description="The same key, PEM (SubjectPublicKeyInfo)")
    signed_content: str = Field(
        description="What is signed: the webhook-timestamp header, '|', the raw body"
    )


class WebhookAttempt(_Strict):
    attempt: int = Field(description="1 for the first attempt")
    attempted_at: str
    http_status: int | None = Field(description="The receiver's answer; null when none came")
    error: str | None = Field(description="Why it failed: timeout, connection, refused target")
    duration_ms: int | None
    next_attempt_at: str | None = Field(description="When it is retried; null: no retry")


class _WebhookDelivery(_Strict):
    id: str = Field(description="The webhook-id header: the same on every attempt")
    url: str
    state: Literal["pending", "delivered", "failed", "cancelled", "superseded"]
    created_at: str
    next_attempt_at: str | None
    finished_at: str | None
    attempts: list[WebhookAttempt]


class V1WebhookDelivery(_WebhookDelivery):
    """One webhook of a request (the event of one status) and its attempts."""

    status: Literal[2, 3, 4] = Field(description="The status announced")


class V2WebhookDelivery(_WebhookDelivery):
    status: Literal["COMPLETE", "FAILED", "EXPIRED"] = Field(description="The status announced")


class V2WebhookDeliveries(_Strict):
    data: list[V2WebhookDelivery]
