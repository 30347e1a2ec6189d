"""Webhook routes: the public key that verifies signatures, and a request's deliveries.

``GET /v1/webhook_public_key`` needs no key (it is public, and receivers fetch it);
``GET .../{id}/webhook_deliveries`` on both surfaces lists each webhook of a request
(one per status announced) with every attempt: when, the HTTP status or the error,
and when the next one is due.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mdr_reporting.api.common import error_responses, reports_key
from mdr_reporting.api.schemas import V1WebhookDelivery, V2WebhookDeliveries, WebhookPublicKey
from mdr_reporting.catalog import ApiKey
from mdr_reporting.catalog.deliveries import DeliveryRecord
from mdr_reporting.domain.errors import NotFound
from mdr_reporting.domain.times import utc_iso

if TYPE_CHECKING:
    from mdr_reporting.api.app import Services

__all__ = ["router"]

router = APIRouter(tags=["Webhooks"])


@router.get(
    "/v1/webhook_public_key",
    summary="The Ed25519 public key that verifies webhook signatures",
    description=(
        "Every webhook carries `webhook-id` (the same on each retry: drop duplicates by "
        "it), `webhook-timestamp` (unix seconds) and `webhook-signature`: base64 of the "
        "Ed25519 signature of the timestamp, `|`, and the raw body. No key needed."
    ),
    responses={200: {"model": WebhookPublicKey}},
    openapi_extra={"security": []},  # public: receivers fetch it without a key
)
async def public_key(request: Request) -> JSONResponse:
    signer = await run_in_threadpool(request.app.state.services.webhook_signer)
    return JSONResponse(signer.public_json())


def _iso(value: datetime | None) -> str | None:
    return utc_iso(value) if value is not None else None


def _delivery(record: DeliveryRecord, status: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "status": status,
        "url": record.url,
        "state": record.state.value,
        "created_at": utc_iso(record.created_at),
        "next_attempt_at": _iso(record.next_attempt_at),
        "finished_at": _iso(record.finished_at),
        "attempts": [
            {
                "attempt": a.attempt,
                "attempted_at": utc_iso(a.attempted_at),
                "http_status": a.http_status,
                "error": a.error,
                "duration_ms": a.duration_ms,
                "next_attempt_at": _iso(a.next_attempt_at),
            }
            for a in record.attempts
        ],
    }


async def _records(request: Request, key: ApiKey, request_id: str) -> list[DeliveryRecord]:
    services: Services = request.app.state.services

    def load() -> list[DeliveryRecord]:
        catalog = services.catalog
        if catalog.get_request(request_id, services.requests.visible_accounts(key)) is None:
            raise NotFound(f"no MDR request with id {request_id!r}")
        return services.deliveries.for_request(request_id)

    records: list[DeliveryRecord] = await run_in_threadpool(load)
    return records


@router.get(
    "/reporting/mdr_requests/{request_id}/webhook_deliveries",
    summary="List the webhooks of an MDR request and their attempts",
    description=(
        "Every webhook announced for the request (one per status it reached: 2, 3 or 4), "
        "with its state, its next attempt and each HTTP attempt's time, status or error."
    ),
    tags=["MDR requests (v1)"],
    responses={200: {"model": list[V1WebhookDelivery]}, **error_responses(401, 403, 404)},
)
async def v1_deliveries(
    request_id: str, request: Request, key: ApiKey = Depends(reports_key)
) -> JSONResponse:
    records = await _records(request, key, request_id)
    return JSONResponse([_delivery(r, int(r.event_status)) for r in records])


@router.get(
    "/v2/legacy/reporting/batch_detail_records/messaging/{request_id}/webhook_deliveries",
    summary="List the webhooks of an MDR request and their attempts (v2 legacy)",
    description=(
        "Every webhook announced for the request (one per status it reached: 2, 3 or 4), "
        "with its state, its next attempt and each HTTP attempt's time, status or error."
    ),
    tags=["MDR requests (v2 legacy)"],
    responses={200: {"model": V2WebhookDeliveries}, **error_responses(401, 403, 404)},
)
async def v2_deliveries(
    request_id: str, request: Request, key: ApiKey = Depends(reports_key)
) -> JSONResponse:
    records = await _records(request, key, request_id)
    return JSONResponse({"data": [_delivery(r, r.event_status.name) for r in records]})
