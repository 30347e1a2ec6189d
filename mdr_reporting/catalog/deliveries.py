"""Completion webhooks in the catalog: the deliveries to make, claimed like jobs.

A delivery is enqueued by :func:`enqueue_deliveries` in the same transaction that
moves its request to Complete, Failed or Expired (catalog/jobs.py), so no event is
lost between a status change and its webhook, whatever process dies when. Senders
claim due deliveries under a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on
SQLite every transaction is ``BEGIN IMMEDIATE``), POST outside any transaction, then
record the attempt while they still hold the lease. A sender killed mid-attempt
leaves a lease that expires, and any sender tries again: at least once, and the
``webhook-id`` (the delivery's id) lets receivers drop the duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mdr_reporting.catalog.schema import requests, webhook_attempts, webhook_deliveries
from mdr_reporting.catalog.store import Catalog
from mdr_reporting.domain.enums import RequestStatus

__all__ = [
    "Attempt",
    "AttemptResult",
    "Delivery",
    "DeliveryQueue",
    "DeliveryRecord",
    "DeliveryState",
    "enqueue_deliveries",
]


class DeliveryState(StrEnum):
    PENDING = "pending"  # to be sent, now or at next_attempt_at
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # retries used up, or the target is not allowed
    CANCELLED = "cancelled"  # the request was deleted before it was sent
    SUPERSEDED = "superseded"  # a newer status of the request replaced it before delivery


@dataclass(frozen=True)
class Delivery:
    """A delivery this sender holds the lease of; ``attempt`` counts from 1."""

    id: str
    request_id: str
    event_status: RequestStatus
    url: str
    surface: str
    attempt: int
    created_at: datetime
    owner: str


@dataclass(frozen=True)
class AttemptResult:
    """What one POST gave: an HTTP status, or an error (timeout, refused, blocked...)."""

    http_status: int | None
    error: str | None
    duration_ms: int | None

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


@dataclass(frozen=True)
class Attempt:
    attempt: int
    attempted_at: datetime
    duration_ms: int | None
    http_status: int | None
    error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery with its attempts, as the webhook_deliveries route shows it."""

    id: str
    event_status: RequestStatus
    url: str
    state: DeliveryState
    created_at: datetime
    next_attempt_at: datetime | None
    finished_at: datetime | None
    attempts: tuple[Attempt, ...]


def enqueue_deliveries(
    db: Connection, request_ids: Collection[str], status: RequestStatus, now: datetime
) -> int:
    """Queue the webhook announcing ``status`` for each of these requests that has a
    ``webhook_url``; call it in the transaction that sets the status. An older event of
    the same request that is still waiting is superseded: receivers get the news, not
    a backlog of stale views. Returns how many were queued."""
    if not request_ids:
        return 0
    rows = db.execute(
        sa.select(requests.c.id, requests.c.webhook_url, requests.c.surface).where(
            requests.c.id.in_(list(request_ids)),
            requests.c.webhook_url.is_not(None),
            requests.c.deleted_at.is_(None),
        )
    ).all()
    if not rows:
        return 0
    db.execute(
        webhook_deliveries.update()
        .where(
            webhook_deliveries.c.request_id.in_([r.id for r in rows]),
            webhook_deliveries.c.state == DeliveryState.PENDING.value,
        )
        .values(
            state=DeliveryState.SUPERSEDED.value,
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
        )
    )
    db.execute(
        webhook_deliveries.insert(),
        [
            {
                "id": str(uuid.uuid4()),
                "request_id": row.id,
                "event_status": int(status),
                "url": row.webhook_url,
                "surface": row.surface or "v1",
                "state": DeliveryState.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "lease_owner": None,
                "lease_expires_at": None,
                "created_at": now,
                "finished_at": None,
            }
            for row in rows
        ],
    )
    return len(rows)


def _due(now: datetime) -> list[Any]:
    return [
        webhook_deliveries.c.state == DeliveryState.PENDING.value,
        webhook_deliveries.c.next_attempt_at <= now,
        sa.or_(
            webhook_deliveries.c.lease_expires_at.is_(None),
            webhook_deliveries.c.lease_expires_at <= now,
        ),
    ]


class DeliveryQueue:
    """Claims, records and lists webhook deliveries; all times from the catalog's clock."""

    def __init__(self, catalog: Catalog, *, lease: timedelta) -> None:
        self.catalog = catalog
        self.lease = lease

    def any_due(self) -> bool:
        """A read without locks, so idle senders poll cheaply (SQLite: no write lock)."""
        query = sa.select(webhook_deliveries.c.id).where(*_due(self.catalog.clock())).limit(1)
        with self.catalog.engine.connect() as db:
            return db.execute(query).first() is not None

    def claim(self, owner: str) -> Delivery | None:
        """Take the lease of the delivery due longest ago, or None when none is due."""
        now = self.catalog.clock()
        query = (
            sa.select(webhook_deliveries)
            .where(*_due(now))
            .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
            .limit(1)
        )
        with self.catalog.transaction() as db:
            if db.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = db.execute(query).first()
            if row is None:
                return None
            attempt = row.attempts + 1
            db.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == row.id)
                .values(lease_owner=owner, lease_expires_at=now + self.lease, attempts=attempt)
            )
        return Delivery(
            id=row.id,
            request_id=row.request_id,
            event_status=RequestStatus(row.event_status),
            url=row.url,
            surface=row.surface,
            attempt=attempt,
            created_at=row.created_at,
            owner=owner,
        )

    def record(
        self,
        delivery: Delivery,
        result: AttemptResult,
        *,
        retry_at: datetime | None,
        attempted_at: datetime,
    ) -> DeliveryState | None:
        """Note one attempt: delivered on 2xx, else pending until ``retry_at`` (None: no
        more tries, Failed). None when the lease was lost (superseded, or taken over)."""
        now = self.catalog.clock()
        if result.ok:
            state, retry_at = DeliveryState.DELIVERED, None
        elif retry_at is None:
            state = DeliveryState.FAILED
        else:
            state = DeliveryState.PENDING
        with self.catalog.transaction() as db:
            done = db.execute(
                webhook_deliveries.update()
                .where(*self._held(delivery))
                .values(
                    state=state.value,
                    next_attempt_at=retry_at,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=None if state is DeliveryState.PENDING else now,
                )
            )
            if done.rowcount != 1:
                return None
            db.execute(
                webhook_attempts.insert().values(
                    delivery_id=delivery.id,
                    attempt=delivery.attempt,
                    attempted_at=attempted_at,
                    duration_ms=result.duration_ms,
                    http_status=result.http_status,
                    error=None if result.error is None else result.error[:500],
                    next_attempt_at=retry_at,
                )
            )
        return state

    def cancel(self, delivery: Delivery) -> bool:
        """The request is gone (deleted): nothing to announce any more."""
        now = self.catalog.clock()
        with self.catalog.transaction() as db:
            done = db.execute(
                webhook_deliveries.update()
                .where(*self._held(delivery))
                .values(
                    state=DeliveryState.CANCELLED.value,
                    next_attempt_at=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=now,
                )
            )
            return done.rowcount == 1

    @staticmethod
    def _held(delivery: Delivery) -> list[Any]:
        return [
            webhook_deliveries.c.id == delivery.id,
            webhook_deliveries.c.lease_owner == delivery.owner,
            webhook_deliveries.c.state == DeliveryState.PENDING.value,
        ]

    def for_request(self, request_id: str) -> list[DeliveryRecord]:
        """Every delivery of a request, oldest first, each with its attempts."""
        with self.catalog.engine.connect() as db:
            rows = db.execute(
                webhook_deliveries.select()
                .where(webhook_deliveries.c.request_id == request_id)
                .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id)
            ).all()
            tries: dict[str, list[Attempt]] = {r.id: [] for r in rows}
            if rows:
                for a in db.execute(
                    webhook_attempts.select()
                    .where(webhook_attempts.c.delivery_id.in_(list(tries)))
                    .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.attempt)
                ):
                    tries[a.delivery_id].append(
                        Attempt(
                            a.attempt,
                            a.attempted_at,
                            a.duration_ms,
                            a.http_status,
                            a.error,
                            a.next_attempt_at,
                        )
                    )
        return [
            DeliveryRecord(
                id=r.id,
                event_status=RequestStatus(r.event_status),
                url=r.url,
                state=DeliveryState(r.state),
                created_at=r.created_at,
                next_attempt_at=r.next_attempt_at,
                finished_at=r.finished_at,
                attempts=tuple(tries[r.id]),
            )
            for r in rows
        ]
