"""API: HTTP only (auth, parsing, the error envelope, status codes); no SQL here."""

from mdr_reporting.api.app import Services, create_app

__all__ = ["Services", "create_app"]
