"""Per-key rate limits at the HTTP edge: which bucket a call spends, and the headers.

Each authenticated call spends one token of exactly one bucket of its key: report
creation (POST with the ``reports`` scope), ingest (the ``ingest`` scope), or the
general bucket (everything else). Past the limit the answer is a 429 with
``Retry-After``; every limited answer carries ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset``. The buckets live in the catalog
(:mod:`mdr_reporting.catalog.ratelimits`), so several API processes share them.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mdr_reporting.catalog import ApiKey, KeyScope
from mdr_reporting.catalog.ratelimits import Allowance, RateLimiter
from mdr_reporting.domain.errors import RateLimited
from mdr_reporting.settings import Settings

__all__ = [
    "LATER",
    "RateLimitHeaders",
    "charge",
    "record",
    "spend",
    "spend_now",
    "spend_soon",
]

_STATE = "mdr_rate_limit"
_WHAT = {"create": "report creates", "ingest": "ingest batches", "general": "API calls"}


def _bucket(method: str, path: str, key: ApiKey) -> str:
    if key.scope is KeyScope.INGEST or path.startswith("/ingest/"):
        return "ingest"
    if method == "POST":
        return "create"
    return "general"


def _limits(settings: Settings, kind: str) -> tuple[float, int]:
    if kind == "create":
        return settings.create_rate_limit_rps, settings.create_rate_limit_burst
    if kind == "ingest":
        return settings.ingest_rate_limit_rps, settings.ingest_rate_limit_burst
    return settings.rate_limit_rps, settings.rate_limit_burst


def spend(services: Any, method: str, path: str, key: ApiKey) -> Allowance | None:
    """Take a token of the key's bucket for this call (blocking: run it off the event loop).

    None when that limit is off; otherwise the take, refused or not (see :func:`record`).
    """
    kind = _bucket(method, path, key)
    rate, burst = _limits(services.settings, kind)
    if rate <= 0:
        return None  # this limit is off
    limiter: RateLimiter = services.rate_limiter
    return limiter.take(f"{kind}:{key.id}", rate=rate, burst=burst)


LATER = object()  # spend_now's answer when the take would wait


def spend_now(services: Any, method: str, path: str, key: ApiKey) -> Allowance | object | None:
    """:func:`spend` if it needs no waiting (callable on the event loop), else ``LATER``."""
    kind = _bucket(method, path, key)
    rate, burst = _limits(services.settings, kind)
    if rate <= 0:
        return None  # this limit is off
    limiter: RateLimiter = services.rate_limiter
    allowance = limiter.take_now(f"{kind}:{key.id}", rate=rate, burst=burst)
    return LATER if allowance is None else allowance


async def spend_soon(
    services: Any, method: str, path: str, key: ApiKey
) -> Allowance | object | None:
    """:func:`spend_now` on the event loop, in the group commit of this turn of the loop
    (:meth:`RateLimiter.take_soon`)."""
    kind = _bucket(method, path, key)
    rate, burst = _limits(services.settings, kind)
    if rate <= 0:
        return None  # this limit is off
    limiter: RateLimiter = services.rate_limiter
    allowance = await limiter.take_soon(f"{kind}:{key.id}", rate=rate, burst=burst)
    return LATER if allowance is None else allowance


def record(request: Request, key: ApiKey, allowance: Allowance | None) -> None:
    """Put the take on the call (for the headers), or raise RateLimited (429) when refused."""
    if allowance is None:
        return
    request.scope.setdefault("state", {})[_STATE] = allowance
    if not allowance.allowed:
        kind = _bucket(request.method, request.url.path, key)
        rate, burst = _limits(request.app.state.services.settings, kind)
        raise RateLimited(
            f"this key is over its limit of {rate:g} {_WHAT[kind]} a second "
            f"(bursts of {burst}): retry in {allowance.retry_after} s",
            retry_after=allowance.retry_after,
            parameter="Authorization",
        )


async def charge(request: Request, key: ApiKey) -> None:
    """Spend a token of the key's bucket for this call, or raise RateLimited (429)."""
    services = request.app.state.services
    allowance = await run_in_threadpool(spend, services, request.method, request.url.path, key)
    record(request, key, allowance)


class RateLimitHeaders:
    """ASGI middleware: puts the RateLimit-* headers of the call's take on its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            state: dict[str, Any] = scope.get("state") or {}
            allowance = state.get(_STATE)
            if message["type"] == "http.response.start" and isinstance(allowance, Allowance):
                message["headers"] = [
                    *message.get("headers", []),
                    (b"ratelimit-limit", str(allowance.limit).encode()),
                    (b"ratelimit-remaining", str(allowance.remaining).encode()),
                    (b"ratelimit-reset", str(allowance.reset).encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
