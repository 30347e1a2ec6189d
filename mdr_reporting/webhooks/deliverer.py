"""The delivery loop: claim a due delivery, POST it signed, record the attempt.

It runs wherever a worker runs (``mdr serve`` on the embedded default, every ``mdr
worker``), in a few threads: a slow receiver holds one thread for at most the
timeout, not the others. A failed attempt (timeout, connection error, non-2xx,
including a redirect, which is not followed) is retried with exponential backoff
and jitter until the retry window (24 h by default) from the event is used up; a
refused target (the SSRF guard) fails at once. Everything is in the catalog, so a
restart, or another worker, carries on where a killed one stopped.

Every outcome passes through :func:`delivery_outcome`, the one place to count them.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import timedelta

import orjson

from mdr_reporting.api.views import v1_view, v2_view
from mdr_reporting.catalog.deliveries import (
    AttemptResult,
    Delivery,
    DeliveryQueue,
    DeliveryState,
)
from mdr_reporting.catalog.store import Catalog
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.files.signing import LinkSigner
from mdr_reporting.observability.metrics import observe_webhook
from mdr_reporting.settings import Settings
from mdr_reporting.webhooks.keys import WebhookSigner
from mdr_reporting.webhooks.sender import Sender

__all__ = [
    "BACKOFF_CAP",
    "Deliverer",
    "delivery_outcome",
    "outcome_listeners",
    "render_body",
    "retry_delay",
    "webhook_deliverer",
]

log = logging.getLogger("mdr.webhooks")

BACKOFF_CAP = timedelta(hours=1)  # the longest wait between two attempts

# Called with each outcome: "delivered", "retry", "failed", "cancelled" or "lost" (the
# lease went to another sender, or a newer event superseded this one, mid-attempt).
OutcomeListener = Callable[[str], None]
outcome_listeners: list[OutcomeListener] = []


def delivery_outcome(outcome: str, delivery: Delivery, result: AttemptResult | None) -> None:
    """The one place every delivery outcome passes: one log line, then each listener
    (e.g. a Prometheus counter ``webhook deliveries by outcome``)."""
    answer = "" if result is None else _answer(result)
    line = "webhook %s for request %s (status %d, attempt %d): %s%s"
    level = logging.WARNING if outcome in ("failed", "retry") else logging.INFO
    log.log(
        level,
        line,
        delivery.id,
        delivery.request_id,
        int(delivery.event_status),
        delivery.attempt,
        outcome,
        answer,
    )
    observe_webhook(outcome)
    for listener in list(outcome_listeners):
        try:
            listener(outcome)
        except Exception:
            log.exception("a webhook outcome listener failed")


def _answer(result: AttemptResult) -> str:
    parts = []
    if result.http_status is not None:
        parts.append(f"HTTP {result.http_status}")
    if result.error:
        parts.append(result.error)
    if result.duration_ms is not None:
        parts.append(f"{result.duration_ms} ms")
    return f" ({', '.join(parts)})" if parts else ""


def retry_delay(
    attempt: int, base: timedelta, *, rng: Callable[[], float] = random.random
) -> timedelta:
    """The wait after failed attempt ``attempt`` (from 1): ``base`` doubled each time up to
    an hour, of which a random half is kept (jitter, so receivers that come back are not
    hit by every sender at once)."""
    ceiling = min(base * (1 << min(max(attempt - 1, 0), 30)), BACKOFF_CAP)
    return ceiling / 2 + ceiling / 2 * rng()


def _no_link(_state: RequestState) -> str | None:
    return None


def render_body(state: RequestState, surface: str, report_url: str | None) -> bytes:
    """The request object in the view of the surface that created it."""
    if surface == "v2":
        return orjson.dumps({"data": v2_view(state, report_url)})
    return orjson.dumps(v1_view(state, report_url))


class Deliverer:
    """``senders`` threads that claim and send due deliveries until :meth:`stop`."""

    def __init__(
        self,
        catalog: Catalog,
        sender: Sender,
        *,
        report_url: Callable[[RequestState], str | None] = _no_link,
        retry_window: timedelta = timedelta(hours=24),
        retry_base: timedelta = timedelta(seconds=5),
        senders: int = 4,
        poll_interval: float = 1.0,
        owner: str = "webhooks",
    ) -> None:
        self.catalog = catalog
        self.sender = sender
        # an attempt holds its lease well past the timeout; then another sender may retry
        self.queue = DeliveryQueue(catalog, lease=timedelta(seconds=sender.timeout * 3 + 30))
        self.report_url = report_url
        self.retry_window = retry_window
        self.retry_base = retry_base
        self.senders = senders
        self.poll_interval = poll_interval
        self.owner = owner
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for slot in range(self.senders):
            thread = threading.Thread(
                target=self._loop, args=(slot,), name=f"mdr-webhooks-{slot}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    def _loop(self, slot: int) -> None:
        """Slot 0 polls (one cheap read a poll interval) and wakes the others when work is
        due; every slot then claims until nothing is left."""
        owner = f"{self.owner}/{slot}"
        while not self._stop.is_set():
            try:
                due = self._wake.is_set() or (slot == 0 and self.queue.any_due())
                if due:
                    self._wake.set()  # the other slots help
                worked = due and self.run_once(owner)
            except Exception:  # the catalog is unreachable: wait and try again
                log.exception("webhook sender %d could not claim work", slot)
                worked = False
            if not worked:
                self._wake.clear()
                self._wake.wait(self.poll_interval if slot == 0 else 10 * self.poll_interval)

    def run_once(self, owner: str | None = None) -> bool:
        """Claim and attempt one due delivery; False when none was due."""
        delivery = self.queue.claim(owner or f"{self.owner}/0")
        if delivery is None:
            return False
        self.attempt(delivery)
        return True

    def run_due(self) -> int:
        """Attempt every delivery due now, one at a time (what the tests call)."""
        done = 0
        while self.run_once():
            done += 1
        return done

    def attempt(self, delivery: Delivery) -> DeliveryState | None:
        state = self.catalog.get_request(delivery.request_id)
        if state is None:  # deleted since: nobody to tell
            if self.queue.cancel(delivery):
                delivery_outcome("cancelled", delivery, None)
            return DeliveryState.CANCELLED
        attempted_at = self.catalog.clock()
        state = state.as_of(attempted_at)
        body = render_body(state, delivery.surface, self.report_url(state))
        sent = self.sender.post(delivery.url, body, delivery.id)
        retry_at = None
        if not sent.result.ok and not sent.permanent:
            now = self.catalog.clock()
            retry_at = now + retry_delay(delivery.attempt, self.retry_base)
            if retry_at > delivery.created_at + self.retry_window:
                retry_at = None
        final = self.queue.record(
            delivery, sent.result, retry_at=retry_at, attempted_at=attempted_at
        )
        outcome = {
            None: "lost",
            DeliveryState.DELIVERED: "delivered",
            DeliveryState.PENDING: "retry",
            DeliveryState.FAILED: "failed",
        }.get(final, "lost")
        delivery_outcome(outcome, delivery, sent.result)
        return final


def webhook_deliverer(settings: Settings, catalog: Catalog, *, owner: str) -> Deliverer:
    """The deliverer of these settings: the key pair from the setting or the data folder,
    and fresh report links signed like the API's (none without a signing secret)."""
    signer = WebhookSigner.load(settings.data_dir, settings.webhook_signing_key)
    sender = Sender(
        signer,
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.webhook_allow_private,
    )
    report_url: Callable[[RequestState], str | None] = _no_link
    if settings.signing_secret:
        report_url = LinkSigner(
            settings.signing_secret,
            settings.public_url,
            timedelta(seconds=settings.link_ttl_seconds),
            catalog.clock,
            old_secrets=settings.signing_old_secrets,
        ).report_url
    return Deliverer(
        catalog,
        sender,
        report_url=report_url,
        retry_window=timedelta(hours=settings.webhook_retry_hours),
        retry_base=timedelta(seconds=settings.webhook_retry_base_seconds),
        senders=settings.webhook_senders,
        owner=owner,
    )
