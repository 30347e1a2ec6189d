"""Reading request bodies with a size limit, and parsing JSON into a clear 400."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from mdr_reporting.domain.errors import InvalidInput, PayloadTooLarge

__all__ = ["MAX_JSON_BODY", "read_body", "read_json"]

MAX_JSON_BODY = 1024 * 1024  # 1 MiB for request bodies (api.md section 8)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidInput("Content-Length must be a number", parameter="Content-Length")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int = MAX_JSON_BODY) -> Any:
    raw = await read_body(request, limit)
    if not raw.strip():
        raise InvalidInput("the request body is empty: send a JSON object", pointer="")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}", pointer="") from None
