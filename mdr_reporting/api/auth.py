"""API keys: ``Authorization: Bearer <key>`` or ``Token <key>``, scope checks, rate limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from mdr_reporting.api.ratelimit import charge
from mdr_reporting.catalog import ApiKey, Catalog, KeyScope
from mdr_reporting.domain.errors import Forbidden, Unauthenticated
from mdr_reporting.observability.http import ACCOUNT_KEY

__all__ = ["require_scope"]

_SCHEMES = ("bearer", "token")


def require_scope(scope: KeyScope) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency answering 401 without a live key, 403 without ``scope`` and 429 past the
    key's rate limit."""

    async def dependency(request: Request) -> ApiKey:
        header = request.headers.get("authorization")
        if not header:
            raise Unauthenticated("missing Authorization header: send 'Bearer <key>'")
        scheme, _, secret = header.strip().partition(" ")
        if scheme.lower() not in _SCHEMES or not secret.strip():
            raise Unauthenticated(
                "the Authorization header must be 'Bearer <key>' or 'Token <key>'"
            )
        catalog: Catalog = request.app.state.services.catalog
        key = await run_in_threadpool(catalog.authenticate, secret.strip())
        if key is None:
            raise Unauthenticated("unknown or revoked API key")
        request.scope[ACCOUNT_KEY] = key.account_id  # for the call's log line
        if not key.allows(scope):
            raise Forbidden(f"this key has the '{key.scope}' scope; this call needs '{scope}'")
        await charge(request, key)
        return key

    return dependency
