"""Pieces both request surfaces share: the reports-scope key, idempotency, doc snippets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from mdr_reporting.api.auth import require_scope
from mdr_reporting.api.body import read_json
from mdr_reporting.api.schemas import ErrorEnvelope
from mdr_reporting.catalog import ApiKey, KeyScope
from mdr_reporting.domain.errors import InvalidInput
from mdr_reporting.domain.requests import ReportRequest, RequestState

__all__ = [
    "UNKNOWN_ACCOUNT",
    "Surface",
    "error_responses",
    "idempotency_key",
    "json_body",
    "reports_key",
]

reports_key = require_scope(KeyScope.REPORTS)

_DESCRIPTIONS = {
    400: "Invalid body or parameter; `source` names the field",
    401: "Missing, unknown or revoked API key",
    403: "The key lacks the needed scope, or names an account it does not manage",
    404: "No such request for this key's account",
    409: "Idempotency-Key reused with a different body",
    413: "Body over the size limit",
    429: "Rate limited, or too many Pending requests: retry after `Retry-After` seconds",
    507: "The service's storage is full; nothing was stored, try again later",
}
_HEADERS = {
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 0},
        }
    }
}


UNKNOWN_ACCOUNT: dict[str, Any] = {
    "model": ErrorEnvelope,
    "description": "managed_accounts names an account that does not exist (admin keys)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        c: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[c]}
        | ({"headers": _HEADERS[c]} if c in _HEADERS else {})
        for c in codes
    }


def json_body(model: type[BaseModel], example: dict[str, Any]) -> dict[str, Any]:
    """An ``openapi_extra`` naming the body schema the domain validates by hand, with an
    example that succeeds when sent as is (``/docs`` fills "Try it out" with it)."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    content = {"application/json": {"schema": ref, "example": example}}
    return {
        "requestBody": {"required": True, "content": content},
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": r"\S", "maxLength": 255},
                "description": "Same key within 24 hours returns the first request",
            }
        ],
    }


def idempotency_key(request: Request) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    value = value.strip()
    if not 1 <= len(value) <= 255:
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 characters", parameter="Idempotency-Key"
        )
    return value


@dataclass(frozen=True)
class Surface:
    """One spelling of the request resource: how a body is parsed and an object rendered.

    Both surfaces run the same four operations; only parsing and rendering differ.
    """

    name: str
    parse: Callable[[Any, datetime], ReportRequest]
    render: Callable[[RequestState, str | None], dict[str, Any]]

    async def create(self, request: Request, key: ApiKey) -> dict[str, Any]:
        services = request.app.state.services
        body = await read_json(request)
        spec = self.parse(body, services.clock())
        state = await run_in_threadpool(
            lambda: services.requests.create(
                key, spec, idempotency_key=idempotency_key(request), surface=self.name, body=body
            )
        )
        return self.render(state, services.report_url(state))

    async def page(
        self, request: Request, key: ApiKey, *, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        services = request.app.state.services
        items, total = await run_in_threadpool(
            lambda: services.requests.list(key, offset=offset, limit=limit)
        )
        return [self.render(s, services.report_url(s)) for s in items], total

    async def get(self, request: Request, key: ApiKey, request_id: str) -> dict[str, Any]:
        return self.render(*await self.read(request, key, request_id))

    async def read(
        self, request: Request, key: ApiKey, request_id: str
    ) -> tuple[RequestState, str | None]:
        """:meth:`get` before rendering: the state as of now and its ``report_url``."""
        services = request.app.state.services
        if services.catalog.reads_never_wait:  # microseconds, no lock: on the loop
            state = services.requests.get(key, request_id)
        else:
            state = await run_in_threadpool(services.requests.get, key, request_id)
        return state, services.report_url(state)

    async def delete(self, request: Request, key: ApiKey, request_id: str) -> dict[str, Any]:
        services = request.app.state.services
        state = await run_in_threadpool(services.requests.delete, key, request_id)
        return self.render(state, None)
