"""Signed download links: HMAC-SHA256 from the standard library over id, file key and expiry.

A link names the request and its expiry in the clear; the signature also covers the
file key, so a link made for another request, or for an earlier file of the same
request, never verifies. Links need no Authorization header (api.md section 3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState

__all__ = ["LinkRejected", "LinkSigner", "SignedLink"]

_PURPOSE = b"mdr report download link v1"


class LinkRejected(Exception):
    """The link is tampered, expired or foreign; the message says which, for the 403."""


@dataclass(frozen=True)
class SignedLink:
    request_id: str
    expires: int  # unix seconds
    signature: str


class LinkSigner:
    """Makes and checks links ``{public_url}/reports/{id}/download?expires=..&sig=..``."""

    def __init__(
        self,
        secret: str,
        public_url: str,
        ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 characters")
        # A key for this one purpose, so the secret can sign other things without overlap.
        self._key = hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()
        self.public_url = public_url.rstrip("/")
        self.ttl = ttl
        self.clock = clock

    def _signature(self, request_id: str, file_key: str, expires: int) -> str:
        message = f"{request_id}\n{file_key}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, request_id: str, file_key: str) -> SignedLink:
        """A link valid for at least ``ttl`` from now (the expiry is rounded up)."""
        expires = math.ceil((self.clock() + self.ttl).timestamp())
        return SignedLink(request_id, expires, self._signature(request_id, file_key, expires))

    def url(self, link: SignedLink) -> str:
        query = urlencode({"expires": link.expires, "sig": link.signature})
        return f"{self.public_url}/reports/{quote(link.request_id, safe='')}/download?{query}"

    def report_url(self, state: RequestState) -> str | None:
        """A fresh link for a Complete request (the ``Services.report_url`` hook)."""
        if state.status is not RequestStatus.COMPLETE or state.file_key is None:
            return None
        return self.url(self.sign(state.id, state.file_key))

    def verify(self, request_id: str, file_key: str, expires: str, signature: str) -> None:
        """Raise LinkRejected unless the link was signed for this request and file and is live."""
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            raise LinkRejected("the link is malformed")
        expected = self._signature(request_id, file_key, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise LinkRejected("the link's signature is not valid")
        if int(expires) <= self.clock().timestamp():
            raise LinkRejected("the link has expired: GET the request again for a fresh one")
