"""One signed webhook POST: pinned to a checked address, 10 s timeout, no redirects.

The receiver's answer body is never read (a 2xx status is all that counts), no proxy
from the environment is used (it would connect to the target itself, past the
guard), and no connection is kept alive: each attempt resolves and checks afresh.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

import certifi
import httpx

from mdr_reporting import __version__
from mdr_reporting.catalog.deliveries import AttemptResult
from mdr_reporting.webhooks.keys import WebhookSigner
from mdr_reporting.webhooks.targets import BlockedTarget, UnresolvedTarget, pin_target

__all__ = ["SendResult", "Sender"]

USER_AGENT = f"mdr-reporting-webhooks/{__version__}"


@dataclass(frozen=True)
class SendResult:
    """An attempt's result; ``permanent``: no retry can succeed (the target is refused)."""

    result: AttemptResult
    permanent: bool = False


class Sender:
    def __init__(
        self,
        signer: WebhookSigner,
        *,
        timeout: float = 10.0,
        allow_private: bool = False,
    ) -> None:
        self.signer = signer
        self.timeout = timeout
        self.allow_private = allow_private
        self._ssl = ssl.create_default_context(cafile=certifi.where())  # httpx's own default

    def headers(self, webhook_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signer.sign(timestamp, body),
        }

    def post(self, url: str, body: bytes, webhook_id: str) -> SendResult:
        started = time.monotonic()

        def took() -> int:
            return round((time.monotonic() - started) * 1000)

        try:
            target = pin_target(url, allow_private=self.allow_private)
        except BlockedTarget as exc:
            return SendResult(AttemptResult(None, str(exc), None), permanent=True)
        except UnresolvedTarget as exc:
            return SendResult(AttemptResult(None, str(exc), took()))
        headers = self.headers(webhook_id, body, int(time.time()))
        headers["host"] = target.host_header
        extensions: dict[str, Any] = {}
        if target.sni_hostname:  # TLS checks the certificate against the name, not the IP
            extensions["sni_hostname"] = target.sni_hostname
        try:
            with (
                httpx.Client(
                    timeout=self.timeout,
                    follow_redirects=False,
                    trust_env=False,
                    verify=self._ssl,
                    limits=httpx.Limits(max_keepalive_connections=0),
                ) as client,
                client.stream(
                    "POST", target.url, content=body, headers=headers, extensions=extensions
                ) as response,
            ):
                status = response.status_code
        except httpx.TimeoutException:
            error = f"no answer within {self.timeout:g} s"
            return SendResult(AttemptResult(None, error, took()))
        except httpx.HTTPError as exc:
            error = f"could not connect to {target.host}: {exc}" if str(exc) else type(exc).__name__
            return SendResult(AttemptResult(None, error, took()))
        refused = "redirects are not followed" if 300 <= status < 400 else None
        return SendResult(AttemptResult(status, refused, took()))
