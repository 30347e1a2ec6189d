"""Pieces both request surfaces share: the reports-scope key, idempotency, doc snippets."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import BaseModel

from mdr_reporting.api.auth import require_scope
from mdr_reporting.api.schemas import ErrorEnvelope
from mdr_reporting.catalog import KeyScope
from mdr_reporting.domain.errors import InvalidInput

__all__ = ["error_responses", "idempotency_key", "json_body", "reports_key"]

reports_key = require_scope(KeyScope.REPORTS)

_DESCRIPTIONS = {
    400: "Invalid body or parameter; `source` names the field",
    401: "Missing, unknown or revoked API key",
    403: "The key lacks the needed scope, or names an account it does not manage",
    404: "No such request for this key's account",
    409: "Idempotency-Key reused with a different body",
    413: "Body over the size limit",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[c]} for c in codes}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """An ``openapi_extra`` naming the body schema the domain validates by hand."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
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
