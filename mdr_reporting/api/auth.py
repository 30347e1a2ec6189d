"""API keys: ``Authorization: Bearer <key>`` or ``Token <key>``, scope checks, rate limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from mdr_reporting.api.ratelimit import LATER, record, spend, spend_soon
from mdr_reporting.catalog import ApiKey, Catalog, KeyScope
from mdr_reporting.catalog.ratelimits import Allowance
from mdr_reporting.domain.errors import Forbidden, Unauthenticated
from mdr_reporting.observability.http import ACCOUNT_KEY

__all__ = ["require_scope"]

_SCHEMES = ("bearer", "token")


def _authenticate(
    services: Any, secret: str, scope: KeyScope, method: str, path: str
) -> tuple[ApiKey, Allowance | None]:
    catalog: Catalog = services.catalog
    key = catalog.touch_key(_live(catalog.find_key(secret)))
    _check_scope(key, scope)
    return key, spend(services, method, path, key)


def _live(key: ApiKey | None) -> ApiKey:
    if key is None:
        raise Unauthenticated("unknown or revoked API key")
    return key


def _check_scope(key: ApiKey, scope: KeyScope) -> None:
    if not key.allows(scope):
        raise Forbidden(f"this key has the '{key.scope}' scope; this call needs '{scope}'")


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
        services = request.app.state.services
        catalog: Catalog = services.catalog
        method, path = request.method, request.scope["path"]  # what request.url.path starts with
        if not catalog.reads_never_wait:
            # One trip off the event loop: the key lookup and, for a key that may make
            # this call, the take from its rate-limit bucket.
            key, allowance = await run_in_threadpool(
                _authenticate, services, secret.strip(), scope, method, path
            )
            record(request, key, allowance)
            request.scope[ACCOUNT_KEY] = key.account_id  # for the call's log line
            return key
        # A SQLite catalog answers the lookup in microseconds without waiting: on the
        # loop, and so does the take, in one commit with the other takes of this turn of
        # the loop. Only what could wait goes to a thread: the once-a-minute
        # last_used_at write, and a take while another process or thread is taking.
        key = _live(catalog.find_key(secret.strip()))
        request.scope[ACCOUNT_KEY] = key.account_id  # for the call's log line
        if catalog.key_needs_touch(key):
            key = await run_in_threadpool(catalog.touch_key, key)
        _check_scope(key, scope)
        taken = await spend_soon(services, method, path, key)
        if taken is LATER:
            taken = await run_in_threadpool(spend, services, method, path, key)
        assert taken is None or isinstance(taken, Allowance)
        record(request, key, taken)
        return key

    return dependency
