"""The lean path of a status read: ``GET`` one request, answered before FastAPI's router.

A client waiting for its report polls ``GET /reporting/mdr_requests/{id}`` (or the v2
legacy twin) again and again, and most of what that call cost went to the framework
around the answer: FastAPI's middleware layers, route matching over every route,
dependency solving and its exit stacks. The catalog, the link and the JSON were a
third of it (see BENCHMARKS.md, "Status reads: a lean path").

:class:`StatusReads` sits between Starlette's error middleware and the rest of the
app's stack. A ``GET`` whose path is exactly ``<prefix>/<one segment>`` of one of the
two surfaces is answered here by the same pieces the FastAPI route runs, in the same
order, so the answer is the same to the byte:

- the call goes through the app's own :class:`~mdr_reporting.observability.AccessLog`
  (the ``mdr.http`` line, the metrics, ``X-Request-Id``) and
  :class:`~mdr_reporting.api.ratelimit.RateLimitHeaders`, with the matched FastAPI
  route and its path parameters in the scope, as the router leaves them;
- authentication is the route's own dependency (:data:`~mdr_reporting.api.common.reports_key`:
  the key lookup, revoked keys, the scope, ``last_used_at``, the rate-limit take);
- the answer is the route's own :meth:`Surface.read <mdr_reporting.api.common.Surface.read>`
  and view, rendered by ``JSONResponse``; an error goes through the app's own exception
  handler for it (the error envelope, ``WWW-Authenticate``, ``Retry-After``), and an
  error none takes through the app's handler of last resort, as Starlette would.

A state read again unchanged reuses the bytes rendered the first time (see
:meth:`StatusReads._body`).

Everything else (another method, another path, a trailing slash, a ``root_path``)
goes on to FastAPI unchanged. No other route of the app answers a ``GET`` of
``<prefix>/<one segment>`` (a test checks it), so the router would pick the same
route. The FastAPI routes stay declared: ``/docs`` and the OpenAPI document list them,
and ``create_app(..., lean_status=False)`` serves them alone (the tests compare both).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mdr_reporting.api.common import Surface
from mdr_reporting.api.ratelimit import RateLimitHeaders
from mdr_reporting.catalog import ApiKey
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.observability.http import AccessLog

__all__ = ["StatusReads", "StatusRoute"]

JSON = JSONResponse.media_type  # the route's content type
RENDERED_BODIES = 1024  # answers kept for reuse (see StatusReads._body)

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


@dataclass(frozen=True)
class StatusRoute:
    """One surface's status read: the FastAPI route it stands for and how it answers."""

    route: Route  # the declared FastAPI route (its path template names the metrics)
    surface: Surface
    envelope: str | None  # v2 wraps the object in {"data": ...}
    key: Callable[[Request], Awaitable[ApiKey]]  # the route's auth dependency


class StatusReads:
    """ASGI: answers the status reads of ``routes`` itself, passes every other call to ``app``
    (the app's whole middleware stack).

    ``handlers`` are the app's exception handlers: an error of the read is answered by
    the same handler as through the router, inside the access log (the envelope carries
    ``X-Request-Id``); an error no handler takes goes to ``crash`` (the app's handler of
    last resort) outside it, and is re-raised for the server to log, as Starlette's
    error middleware does.
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: list[StatusRoute],
        handlers: Mapping[Any, Handler],
    ) -> None:
        self.app = app
        self.handlers = {k: v for k, v in handlers.items() if isinstance(k, type)}
        self.crash = self.handlers.pop(Exception, None) or handlers.get(500)
        self.prefixes: dict[str, StatusRoute] = {}
        for status in routes:
            prefix, _, param = status.route.path.rpartition("/")
            if param != "{request_id}" or not prefix:
                raise ValueError(f"not a status read route: {status.route.path}")
            self.prefixes[prefix] = status
        self.lean = AccessLog(RateLimitHeaders(self._answer))
        self._bodies: dict[tuple[int, str], tuple[RequestState, str | None, bytes]] = {}

    def matched(self, scope: Scope) -> StatusRoute | None:
        """The status route this call is for, or None (the router's business)."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        prefix, _, request_id = path.rpartition("/")
        if not request_id:
            return None
        return self.prefixes.get(prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = self.matched(scope)
        if status is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = status.route  # as the router leaves them: for the log line,
        scope["endpoint"] = status.route.endpoint  # the metrics and the handlers
        scope["path_params"] = {"request_id": scope["path"].rpartition("/")[2]}
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.lean(scope, receive, tracked)
        except Exception as exc:
            if self.crash is not None and not started:
                response = await _handled(self.crash, Request(scope), exc)
                await response(scope, receive, send)
            raise

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = self.prefixes[scope["path"].rpartition("/")[0]]
        request = Request(scope, receive)
        response: Response
        try:
            key = await status.key(request)
            state, url = await status.surface.read(request, key, scope["path_params"]["request_id"])
            response = Response(self._body(status, state, url), media_type=JSON)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await _handled(handler, request, exc)
        await response(scope, receive, send)

    def _body(self, status: StatusRoute, state: RequestState, url: str | None) -> bytes:
        """The JSON of the route's answer. A state read again unchanged is the same object
        (the catalog keeps the conversion of an unchanged row; a Complete, Failed or
        Expired state is the same as of any time before its expiry), and its link is
        the same within a second: such a read reuses the bytes rendered the first time."""
        memo = (id(state), status.surface.name)
        found = self._bodies.get(memo)
        if found is not None and found[0] is state and found[1] == url:
            return found[2]
        item = status.surface.render(state, url)
        body = JSONResponse(item if status.envelope is None else {status.envelope: item}).body
        if len(self._bodies) >= RENDERED_BODIES:
            self._bodies.clear()
        self._bodies[memo] = (state, url, bytes(body))  # the state kept: its id stays its own
        return bytes(body)

    def _handler(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                handler: Handler = self.handlers[cls]
                return handler
        return None


async def _handled(handler: Handler, request: Request, exc: Exception) -> Response:
    """The handler's answer (the app's handlers are coroutines; Starlette would run a
    plain function in a thread, and so does this)."""
    if inspect.iscoroutinefunction(handler):
        answer = await handler(request, exc)
    else:
        answer = await run_in_threadpool(handler, request, exc)
    assert isinstance(answer, Response)
    return answer
