"""``POST /ingest/mdrs``: records in over HTTP (api.md section 13)."""

from __future__ import annotations

import threading
import zlib
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mdr_reporting.api.auth import require_scope
from mdr_reporting.api.body import read_body
from mdr_reporting.api.common import error_responses
from mdr_reporting.api.examples import INGEST_EXAMPLE, INGEST_NDJSON_EXAMPLE
from mdr_reporting.catalog import ApiKey, KeyScope
from mdr_reporting.domain.errors import (
    InsufficientStorage,
    InvalidInput,
    PayloadTooLarge,
    storage_full,
)
from mdr_reporting.ingest import Ingestor, InvalidRecords, parse_json_array, parse_ndjson
from mdr_reporting.lake import open_lake

__all__ = ["MAX_BATCH_BYTES", "router"]

MAX_BATCH_BYTES = 64 * 1024 * 1024  # before and after gunzip

router = APIRouter(tags=["Records in"])
ingest_key = require_scope(KeyScope.INGEST)
_setup = threading.Lock()

# NDJSON is a sequence of the same objects, one per line: its schema is that of the array.
_RECORDS = {
    "type": "array",
    "minItems": 1,
    "items": {"$ref": "#/components/schemas/MdrRecord"},
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {"schema": _RECORDS, "example": INGEST_NDJSON_EXAMPLE},
            "application/json": {"schema": _RECORDS, "example": INGEST_EXAMPLE},
        },
        "description": "MDRs as NDJSON (one object per line) or a JSON array; may be gzipped "
        "(Content-Encoding: gzip). At most 64 MiB, also once decompressed. The batch is "
        "atomic; one id may not change its `account_id` or `created_at`.",
    }
}


@router.post(
    "/ingest/mdrs",
    summary="Ingest MDRs",
    description="Store a batch of records atomically: all of them, durably, or none (400 "
    "listing the bad rows). Re-sending a batch changes nothing.",
    responses={
        200: {
            "description": "Every record stored",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"accepted": {"type": "integer", "minimum": 0}},
                        "required": ["accepted"],
                        "additionalProperties": False,
                    },
                    "example": {"accepted": 1000},
                }
            },
        },
        **error_responses(400, 401, 403, 413, 429, 507),
    },
    openapi_extra=_BODY,
)
async def ingest_mdrs(request: Request, key: ApiKey = Depends(ingest_key)) -> JSONResponse:
    body = await read_body(request, MAX_BATCH_BYTES)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        body = await run_in_threadpool(gunzip, body, MAX_BATCH_BYTES)
    elif encoding != "identity":
        raise InvalidInput("Content-Encoding must be gzip or absent", parameter="Content-Encoding")
    ingestor = _ingestor(request.app)
    try:
        result = await run_in_threadpool(_ingest, ingestor, key, body)
    except InvalidRecords as bad:
        return JSONResponse({"errors": [_problem(bad, i) for i in range(len(bad.problems))]}, 400)
    except Exception as exc:
        if storage_full(exc):  # the lake's writer dropped what it had written
            raise InsufficientStorage(
                "the service's storage is full: nothing of this batch was stored; "
                "send it again later"
            ) from None
        raise
    return JSONResponse({"accepted": result})


def _ingest(ingestor: Ingestor, key: ApiKey, body: bytes) -> int:
    start = body.lstrip()[:1]
    if not start:
        raise InvalidInput("the body is empty: send NDJSON or a JSON array of records", pointer="")
    chunk = parse_json_array(body) if start == b"[" else parse_ndjson(body)
    writable = None
    if key.scope != KeyScope.ADMIN:
        writable = set(ingestor.catalog.managed_accounts(key.account_id))
    return ingestor.ingest_batch(chunk, writable).rows


def _problem(bad: InvalidRecords, index: int) -> dict[str, Any]:
    problem, item = bad.problems[index], bad.items[index]
    return {
        "code": item.code,
        "title": item.title,
        "detail": item.detail,
        "source": {"pointer": item.pointer or ""},
        "meta": problem.to_json(),
    }


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip, refusing (413) as soon as the output would pass ``limit`` bytes."""
    inflater = zlib.decompressobj(wbits=31)
    out: list[bytes] = []
    size = 0
    pending = data
    try:
        while pending:
            piece = inflater.decompress(pending, 1 << 20)
            size += len(piece)
            if size > limit:
                raise PayloadTooLarge(f"the decompressed body is over the {limit}-byte limit")
            out.append(piece)
            pending = inflater.unconsumed_tail
            if inflater.eof and inflater.unused_data.strip(b"\0"):
                pending = inflater.unused_data  # another gzip member follows
                inflater = zlib.decompressobj(wbits=31)
        if not inflater.eof:
            raise InvalidInput("the gzip body is truncated", parameter="Content-Encoding")
    except zlib.error as exc:
        raise InvalidInput(
            f"the body is not valid gzip: {exc}", parameter="Content-Encoding"
        ) from None
    return b"".join(out)


def _ingestor(app: FastAPI) -> Ingestor:
    """One Ingestor (and lake) per app, made on first use."""
    ingestor: Ingestor | None = getattr(app.state, "ingestor", None)
    if ingestor is None:
        with _setup:
            ingestor = getattr(app.state, "ingestor", None)
            if ingestor is None:
                services = app.state.services
                lake = services.lake or open_lake(services.settings.lake_url, services.settings)
                ingestor = Ingestor(lake, services.catalog)
                app.state.ingestor = ingestor
    return ingestor
