"""Signed download links: HMAC-SHA256 from the standard library over id, file and expiry.

A link names the request, a tag of its file (a digest of the file key) and its expiry
in the clear, and the signature covers all three: the download route checks it before
it looks anything up, so a bad link says nothing about which ids exist. A link made
for another request, or for an earlier file of the same request, never verifies (the
route compares the tag with the request's file). No Authorization header (api.md 3).

Rotation: ``sig`` is ``<key id>.<signature>``, the key id being a fingerprint of the
secret that signed it. The signer signs with the current secret and verifies with it
or with any retired one it was given, so links made before a rotation keep working
until they expire. A link without a key id (made before key ids existed) is checked
against every secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState

__all__ = ["LinkRejected", "LinkSigner", "SignedLink", "file_tag"]

_PURPOSE = b"mdr report download link v1"
_MADE_LINKS = 1024  # links kept for reuse within their second (see LinkSigner.report_url)


def _purpose_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _key_id(key: bytes) -> str:
    """A short public name of a key: it tells which secret signed, and nothing of it."""
    digest = hmac.new(key, b"mdr key id", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode()


class LinkRejected(Exception):
    """The link is tampered, expired or foreign; the message says which, for the 403."""


@dataclass(frozen=True)
class SignedLink:
    request_id: str
    file: str  # file_tag() of the file key
    expires: int  # unix seconds
    signature: str


def file_tag(file_key: str) -> str:
    """A short digest of a file key: names the file in a link without showing the key."""
    digest = hashlib.sha256(file_key.encode()).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode()


class LinkSigner:
    """Makes and checks links ``{public_url}/reports/{id}/download?file=..&expires=..&sig=..``."""

    def __init__(
        self,
        secret: str,
        public_url: str,
        ttl: timedelta,
        clock: Callable[[], datetime],
        *,
        old_secrets: Sequence[str] = (),
    ) -> None:
        if any(len(s) < 16 for s in (secret, *old_secrets)):
            raise ValueError("the signing secret must be at least 16 characters")
        # A key for this one purpose, so the secret can sign other things without overlap.
        self._key = _purpose_key(secret)
        self.key_id = _key_id(self._key)
        self._keys = {_key_id(k): k for k in map(_purpose_key, old_secrets)}
        self._keys[self.key_id] = self._key
        self.public_url = public_url.rstrip("/")
        self.ttl = ttl
        self.clock = clock
        # The link last made for each (request, file, expiry): a request polled many
        # times a second gets the same link within a second (its expiry is whole
        # seconds), signed once.
        self._made: dict[tuple[str, str, int], str] = {}

    @staticmethod
    def _signature(key: bytes, request_id: str, file: str, expires: int) -> str:
        message = f"{request_id}\n{file}\n{expires}".encode()
        digest = hmac.new(key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def _expires(self) -> int:
        return math.ceil((self.clock() + self.ttl).timestamp())

    def sign(self, request_id: str, file_key: str) -> SignedLink:
        """A link valid for at least ``ttl`` from now (the expiry is rounded up)."""
        return self._sign(request_id, file_key, self._expires())

    def _sign(self, request_id: str, file_key: str, expires: int) -> SignedLink:
        tag = file_tag(file_key)
        signature = self._signature(self._key, request_id, tag, expires)
        return SignedLink(request_id, tag, expires, f"{self.key_id}.{signature}")

    def url(self, link: SignedLink) -> str:
        query = urlencode({"file": link.file, "expires": link.expires, "sig": link.signature})
        return f"{self.public_url}/reports/{quote(link.request_id, safe='')}/download?{query}"

    def report_url(self, state: RequestState) -> str | None:
        """A fresh link for a Complete request (the ``Services.report_url`` hook)."""
        if state.status is not RequestStatus.COMPLETE or state.file_key is None:
            return None
        expires = self._expires()
        made = self._made.get((state.id, state.file_key, expires))
        if made is None:
            made = self.url(self._sign(state.id, state.file_key, expires))
            if len(self._made) >= _MADE_LINKS:
                self._made.clear()
            self._made[(state.id, state.file_key, expires)] = made
        return made

    def verify(self, request_id: str, file: str, expires: str, signature: str) -> None:
        """Raise LinkRejected unless the link was signed for this request, file tag and
        expiry and is live; needs nothing but the link itself."""
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            raise LinkRejected("the link is malformed")
        key_id, dot, mac = signature.rpartition(".")
        if dot:
            key = self._keys.get(key_id)
            keys = [key] if key is not None else []
        else:  # a link from before key ids: any of our secrets may have signed it
            keys = list(self._keys.values())
        given = mac.encode()
        if not any(
            hmac.compare_digest(self._signature(k, request_id, file, int(expires)).encode(), given)
            for k in keys
        ):
            raise LinkRejected("the link's signature is not valid")
        if int(expires) <= self.clock().timestamp():
            raise LinkRejected("the link has expired: GET the request again for a fresh one")
