"""One log line and the HTTP metrics for every call, as a pure ASGI middleware.

It reads what the router and the auth dependency leave in the ASGI scope (the matched
route and the key's account), so a call costs two clock reads, one wrapped ``send``,
a cached metrics lookup and one log record. The call's ``X-Request-Id`` (the client's,
when it is a short token, or a new one) is echoed on the answer and logged.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mdr_reporting.observability.metrics import observe_http

__all__ = ["ACCOUNT_KEY", "AccessLog"]

log = logging.getLogger("mdr.http")

ACCOUNT_KEY = "mdr.account"  # the scope entry where authentication puts the key's account
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_UNMATCHED = "<unmatched>"
_FORMAT = "%s %s %d %.1f ms account=%s request_id=%s mdr_request=%s"


class AccessLog:
    """``mdr.http`` line and ``mdr_http_*`` metrics per call (replaces uvicorn's access log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500  # an exception that escapes the app is answered 500 by Starlette
        header = (b"x-request-id", request_id)

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or _UNMATCHED
            if template != _UNMATCHED and scope.get("root_path"):
                template = scope["root_path"] + template
            method = scope["method"]
            observe_http(method, template, status, seconds)
            if log.isEnabledFor(logging.INFO):
                _log_call(scope, method, template, status, seconds, request_id)


def _log_call(
    scope: Scope, method: str, route: str, status: int, seconds: float, request_id: bytes
) -> None:
    account = scope.get(ACCOUNT_KEY) or "-"
    params: dict[str, Any] = scope.get("path_params") or {}
    mdr_request = params.get("request_id") or "-"
    rid = request_id.decode()
    ms = seconds * 1000.0
    # The record is made here, not by log.info: no walk up the stack for the caller's
    # file and line, which no line of ours prints (half the cost of a line).
    record = log.makeRecord(
        log.name,
        logging.INFO,
        __file__,
        0,
        _FORMAT,
        (method, route, status, ms, account, rid, mdr_request),
        None,
    )
    record.mdr = {
        "event": "http",
        "method": method,
        "route": route,
        "status": status,
        "ms": round(ms, 2),
        "account": account,
        "request_id": rid,
        "mdr_request": mdr_request,
    }
    log.handle(record)


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return bytes(value)
            break
    return os.urandom(8).hex().encode()
