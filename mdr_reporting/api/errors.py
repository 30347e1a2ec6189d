"""The error envelope of api.md section 8, for every error the app can answer."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mdr_reporting.domain.errors import ErrorItem, MdrError

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


def _documented_methods(app: FastAPI, path: str) -> set[str]:
    """The methods /openapi.json lists for the path template that ``path`` matches."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, operations in app.openapi().get("paths", {}).items():
            regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            table.append((re.compile(f"^{regex}$"), {m.upper() for m in operations}))
        app.state.allow_table = table
    return {m for pattern, methods in table if pattern.match(path) for m in methods}


def _allowed(request: Request, exc: StarletteHTTPException) -> str:
    """Every method the resource answers: several routes may share one path (GET, DELETE)."""
    routed = (exc.headers or {}).get("Allow", "")
    methods = {m.strip().upper() for m in routed.split(",") if m.strip()}
    methods |= _documented_methods(request.app, request.url.path)
    methods.add("OPTIONS")
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return ", ".join(sorted(methods, key=lambda m: (order.index(m) if m in order else 99, m)))


def install_error_handlers(app: FastAPI) -> None:
    async def on_mdr_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MdrError)
        headers = {"WWW-Authenticate": 'Bearer realm="mdr"'} if exc.status == 401 else None
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
            headers["Allow"] = _allowed(request, exc)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
        code, title = _HTTP_CODES.get(exc.status_code, ("error", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        return error_response(exc.status_code, [ErrorItem(code, title, detail)], headers)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(
            500, [ErrorItem("internal_error", "Internal error", "an unexpected error occurred")]
        )

    app.add_exception_handler(MdrError, on_mdr_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
