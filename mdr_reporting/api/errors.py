"""The error envelope of api.md section 8, for every error the app can answer."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from mdr_reporting.domain.errors import (
    ErrorItem,
    InsufficientStorage,
    MdrError,
    RateLimited,
    storage_full,
)

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger("mdr.api")

_HTTP_CODES = {
    400: ("invalid_parameter", "Invalid parameter"),
    401: ("unauthorized", "Authentication failed"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Resource not found"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    429: ("rate_limited", "Too many requests"),
}


def _item(item: ErrorItem) -> dict[str, Any]:
    out: dict[str, Any] = {"code": item.code, "title": item.title, "detail": item.detail}
    if item.pointer is not None:
        out["source"] = {"pointer": item.pointer}
    elif item.parameter is not None:
        out["source"] = {"parameter": item.parameter}
    return out


def error_response(
    status: int, items: list[ErrorItem], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"errors": [_item(i) for i in items]}, status, headers=headers)


def _pointer(loc: tuple[Any, ...]) -> tuple[str | None, str | None]:
    """A framework location such as ('query', 'page') as a JSON pointer or parameter name."""
    if not loc:
        return None, None
    where, *rest = loc
    if where == "body":
        return "/" + "/".join(str(p) for p in rest), None
    return None, str(rest[0]) if rest else str(where)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed(request: Request) -> str:
    """Every method the resource answers: several routes may share one path (GET, DELETE),
    and the router's own 405 names only the first of them."""
    methods = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join([*methods, "OPTIONS"])


def install_error_handlers(app: FastAPI) -> None:
    async def on_mdr_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MdrError)
        headers = {"WWW-Authenticate": 'Bearer realm="mdr"'} if exc.status == 401 else None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        return error_response(exc.status, exc.items, headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        # FastAPI would answer 422; the contract says 400 for every invalid input.
        assert isinstance(exc, RequestValidationError)
        items = []
        for problem in exc.errors():
            pointer, parameter = _pointer(tuple(problem.get("loc", ())))
            name = parameter or pointer or "request"
            items.append(
                ErrorItem(
                    "invalid_parameter",
                    "Invalid parameter",
                    f"{name}: {problem.get('msg', 'invalid')}",
                    pointer=pointer,
                    parameter=parameter,
                )
            )
        return error_response(400, items)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # OPTIONS is answered for every resource: 204 and the methods it takes.
            headers["Allow"] = _allowed(request)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
        code, title = _HTTP_CODES.get(exc.status_code, ("error", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        return error_response(exc.status_code, [ErrorItem(code, title, detail)], headers)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        if storage_full(exc):  # e.g. the catalog's disk: a write was refused, not half-done
            log.error("storage full on %s %s: %s", request.method, request.url.path, exc)
            full = InsufficientStorage("the service's storage is full: try again later")
            return error_response(full.status, full.items)
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(
            500, [ErrorItem("internal_error", "Internal error", "an unexpected error occurred")]
        )

    app.add_exception_handler(MdrError, on_mdr_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
