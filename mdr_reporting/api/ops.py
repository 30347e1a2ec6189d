"""Operator routes, without a key: ``/healthz``, ``/readyz`` and ``/metrics``.

``/metrics`` is open by default, like every Prometheus exporter (it carries counts and
route templates, never customer data); with ``metrics_auth = "admin"`` it needs a key
with the ``admin`` scope (Prometheus sends it with ``authorization: {credentials: ...}``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mdr_reporting.api.auth import require_scope
from mdr_reporting.catalog import KeyScope
from mdr_reporting.observability import CONTENT_TYPE_LATEST, Observability

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_admin = require_scope(KeyScope.ADMIN)


def _observability(request: Request) -> Observability:
    services = request.app.state.services
    found: Observability = services.observability
    return found


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    status, body = await run_in_threadpool(_observability(request).ready)
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    if request.app.state.services.settings.metrics_auth == "admin":
        await _admin(request)
    body = await run_in_threadpool(_observability(request).metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
