"""Figures about the queue that operators read at scrape time (metrics, readiness)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from mdr_reporting.catalog.schema import requests
from mdr_reporting.catalog.store import Catalog
from mdr_reporting.domain.enums import RequestStatus

__all__ = ["QueueDepth", "ping", "queue_depth"]


class QueueDepth:
    __slots__ = ("building", "pending")

    def __init__(self, pending: int, building: int) -> None:
        self.pending = pending  # waiting for a worker
        self.building = building  # held by a live lease


def queue_depth(catalog: Catalog, now: datetime | None = None) -> QueueDepth:
    """Pending requests not held by a live lease, and those being built (one query)."""
    now = now or catalog.clock()
    live = sa.and_(requests.c.lease_owner.is_not(None), requests.c.lease_expires_at > now)
    query = sa.select(
        sa.func.count().label("all"),
        sa.func.coalesce(sa.func.sum(sa.case((live, 1), else_=0)), 0).label("building"),
    ).where(
        requests.c.status == int(RequestStatus.PENDING),
        requests.c.deleted_at.is_(None),
    )
    with catalog.engine.connect() as db:
        row = db.execute(query).one()
    building = int(row.building)
    return QueueDepth(pending=int(row.all) - building, building=building)


def ping(catalog: Catalog) -> None:
    """Raise when the catalog cannot answer a trivial query."""
    with catalog.engine.connect() as db:
        db.execute(sa.select(1)).scalar_one()
