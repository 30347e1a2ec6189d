"""The service's exception hierarchy; the API turns each into a status code at the edge.

MdrError
├── InvalidInput        400  (pointer or parameter names the field)
├── Unauthenticated     401
├── Forbidden           403
├── NotFound            404
├── Conflict            409
├── PayloadTooLarge     413
├── RateLimited         429  (``retry_after`` seconds go in the Retry-After header)
└── InsufficientStorage 507  (the service's disk is full; nothing was stored)
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

__all__ = [
    "Conflict",
    "ErrorItem",
    "Forbidden",
    "InsufficientStorage",
    "InvalidInput",
    "MdrError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthenticated",
    "storage_full",
]


@dataclass(frozen=True)
class ErrorItem:
    """One problem: a machine code, a short title, a detail naming the reason, and where."""

    code: str
    title: str
    detail: str
    pointer: str | None = None  # JSON pointer into the body, e.g. /filters/0/cli_filter
    parameter: str | None = None  # query or path parameter name


class MdrError(Exception):
    status = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(
        self, detail: str, *, pointer: str | None = None, parameter: str | None = None
    ) -> None:
        super().__init__(detail)
        self.items: list[ErrorItem] = [
            ErrorItem(self.code, self.title, detail, pointer=pointer, parameter=parameter)
        ]

    @property
    def detail(self) -> str:
        return self.items[0].detail


class InvalidInput(MdrError):
    status = 400
    code = "invalid_parameter"
    title = "Invalid parameter"

    @classmethod
    def many(cls, items: list[ErrorItem]) -> InvalidInput:
        error = cls(items[0].detail, pointer=items[0].pointer, parameter=items[0].parameter)
        error.items = list(items)
        return error


class Unauthenticated(MdrError):
    status = 401
    code = "unauthorized"
    title = "Authentication failed"


class Forbidden(MdrError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(MdrError):
    status = 404
    code = "not_found"
    title = "Resource not found"


class Conflict(MdrError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(MdrError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class RateLimited(MdrError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, parameter: str | None = None) -> None:
        super().__init__(detail, parameter=parameter)
        self.retry_after = max(1, retry_after)


class InsufficientStorage(MdrError):
    status = 507
    code = "insufficient_storage"
    title = "Insufficient storage"


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# How libraries that do not raise OSError say it (DuckDB, SQLite, Arrow).
_FULL_TEXTS = ("no space left on device", "disk quota exceeded", "database or disk is full")


def storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it came from) says a disk or quota is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if any(text in str(current).lower() for text in _FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False
