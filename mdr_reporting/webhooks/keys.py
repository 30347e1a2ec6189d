"""The Ed25519 key pair that signs completion webhooks (api.md section 12).

Made once, on first use, into the data folder as ``webhook-signing.key`` (PKCS#8
PEM, 0600 from its first byte, linked into place so that two processes starting
together end up with one key); or given with ``MDR_WEBHOOK_SIGNING_KEY`` (base64 of
the 32-byte private key, or PEM) where API processes and workers share no data
folder. The signature covers ``f"{timestamp}|"`` followed by the exact body bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from mdr_reporting.owner_only import private_dir, write_new

__all__ = [
    "KEY_FILE",
    "SigningKeyError",
    "WebhookSigner",
    "parse_signing_key",
    "signed_content",
    "verify_signature",
]

KEY_FILE = "webhook-signing.key"


class SigningKeyError(ValueError):
    """The configured webhook signing key cannot be read; the message says why."""


def signed_content(timestamp: int | str, body: bytes) -> bytes:
    """What the signature covers: the ``webhook-timestamp`` value, ``|``, the body."""
    return f"{timestamp}|".encode() + body


def verify_signature(public_key: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) signs ``timestamp|body`` under ``public_key`` (base64
    of the raw 32 bytes): what a receiver does, in a few lines."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
    try:
        key.verify(base64.b64decode(signature), signed_content(timestamp, body))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


class WebhookSigner:
    """Signs webhook bodies; publishes the public half at ``GET /v1/webhook_public_key``."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        public = private_key.public_key()
        self.public_raw = public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        self.key_id = hashlib.sha256(self.public_raw).hexdigest()[:16]

    @classmethod
    def load(cls, data_dir: Path, configured: str | None = None) -> WebhookSigner:
        """The configured key, else the data folder's, made there on first use."""
        if configured:
            return cls(parse_signing_key(configured))
        path = data_dir / KEY_FILE
        if not path.exists():
            private_dir(data_dir)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_new(path, pem)  # False: another process made it first; read theirs
        try:
            return cls(parse_signing_key(path.read_text()))
        except SigningKeyError as exc:
            raise SigningKeyError(f"{path}: {exc}") from None

    def sign(self, timestamp: int | str, body: bytes) -> str:
        """The ``webhook-signature`` header: base64 of the Ed25519 signature."""
        return base64.b64encode(self._key.sign(signed_content(timestamp, body))).decode()

    def public_json(self) -> dict[str, Any]:
        return {
            "algorithm": "ed25519",
            "key_id": self.key_id,
            "public_key": base64.b64encode(self.public_raw).decode(),
            "public_key_pem": self.public_pem,
            "signed_content": "{webhook-timestamp}|{body}",
        }


def parse_signing_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM or base64 of its 32 bytes; SigningKeyError saying
    what is wrong (the settings check it at start-up)."""
    text = text.strip()
    try:
        if text.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error):
        raise SigningKeyError(
            "not an Ed25519 private key (PEM, or base64 of its 32 bytes)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("the key is not an Ed25519 key")
    return key
