"""MDR usage reports in the catalog: the resource and its job (claim, complete, retry).

The row is the job, as a report request's is (:mod:`mdr_reporting.catalog.jobs`): a
worker takes a lease on a Pending row, computes, and completes it while it still
holds the lease; an expired lease lets another worker take it over.  On PostgreSQL
the claim locks its row with ``FOR UPDATE SKIP LOCKED`` and the create sends the
``NOTIFY`` that wakes idle workers; on SQLite every write is ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mdr_reporting.catalog.notify import notify_claimable
from mdr_reporting.catalog.schema import usage_reports
from mdr_reporting.catalog.store import Catalog
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.usage.params import UsageQuery

__all__ = ["UsageClaim", "UsageReport", "UsageStore"]


@dataclass(frozen=True)
class UsageReport:
    id: str
    account_id: str
    accounts: tuple[str, ...]
    query: UsageQuery
    status: RequestStatus
    result: list[dict[str, Any]] | None
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class UsageClaim:
    report: UsageReport
    owner: str
    attempt: int


def _locked(query: sa.Select[Any], db: Connection) -> sa.Select[Any]:
    if db.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


class UsageStore:
    def __init__(
        self,
        catalog: Catalog,
        *,
        lease: timedelta = timedelta(minutes=10),
        max_attempts: int = 3,
    ) -> None:
        self.catalog = catalog
        self.lease = lease
        self.max_attempts = max_attempts

    def _now(self) -> datetime:
        return self.catalog.clock()

    @staticmethod
    def _report(row: Any) -> UsageReport:
        query = UsageQuery(
            aggregation=row.aggregation_type,
            start=row.start_date,
            end=row.end_time,
            end_date=row.end_date,
            profiles=tuple(orjson.loads(row.profiles)),
        )
        return UsageReport(
            id=row.id,
            account_id=row.account_id,
            accounts=tuple(orjson.loads(row.accounts)),
            query=query,
            status=RequestStatus(row.status),
            result=orjson.loads(row.result) if row.result is not None else None,
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- the resource ---------------------------------------------------------------------

    def create(self, account_id: str, accounts: Collection[str], query: UsageQuery) -> UsageReport:
        now = self._now()
        report_id = str(uuid.uuid4())
        with self.catalog.transaction() as db:
            db.execute(
                usage_reports.insert().values(
                    id=report_id,
                    account_id=account_id,
                    accounts=orjson.dumps(sorted(set(accounts))).decode(),
                    aggregation_type=query.aggregation,
                    start_date=query.start,
                    end_date=query.end_date,
                    end_time=query.end,
                    profiles=orjson.dumps(list(query.profiles)).decode(),
                    status=int(RequestStatus.PENDING),
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            notify_claimable(db, report_id)
        found = self.get(report_id, [account_id])
        assert found is not None
        return found

    def get(self, report_id: str, accounts: Collection[str] | None) -> UsageReport | None:
        """The report if one of ``accounts`` (None: any) owns it."""
        query = usage_reports.select().where(usage_reports.c.id == report_id)
        if accounts is not None:
            query = query.where(usage_reports.c.account_id.in_(list(accounts)))
        with self.catalog.engine.connect() as db:
            row = db.execute(query).first()
        return None if row is None else self._report(row)

    def page(
        self, accounts: Collection[str] | None, *, offset: int, limit: int
    ) -> tuple[list[UsageReport], int]:
        """Newest first."""
        where = [] if accounts is None else [usage_reports.c.account_id.in_(list(accounts))]
        with self.catalog.engine.connect() as db:
            total = db.execute(
                sa.select(sa.func.count()).select_from(usage_reports).where(*where)
            ).scalar_one()
            rows = db.execute(
                usage_reports.select()
                .where(*where)
                .order_by(usage_reports.c.created_at.desc(), usage_reports.c.id.desc())
                .offset(offset)
                .limit(limit)
            ).all()
        return [self._report(r) for r in rows], int(total)

    def delete(self, report_id: str, accounts: Collection[str] | None) -> UsageReport | None:
        """Remove the report (a worker computing it finds its lease gone at completion)."""
        with self.catalog.transaction() as db:
            query = usage_reports.select().where(usage_reports.c.id == report_id)
            if accounts is not None:
                query = query.where(usage_reports.c.account_id.in_(list(accounts)))
            row = db.execute(query).first()
            if row is None:
                return None
            db.execute(usage_reports.delete().where(usage_reports.c.id == report_id))
        return self._report(row)

    # -- the job --------------------------------------------------------------------------

    def claim(self, owner: str) -> UsageClaim | None:
        """Lease the oldest claimable Pending report (failing one whose attempts are spent)."""
        now = self._now()
        free = sa.or_(
            usage_reports.c.lease_expires_at.is_(None), usage_reports.c.lease_expires_at <= now
        )
        query = (
            usage_reports.select()
            .where(usage_reports.c.status == int(RequestStatus.PENDING), free)
            .order_by(usage_reports.c.created_at, usage_reports.c.id)
            .limit(1)
        )
        with self.catalog.transaction() as db:
            for _ in range(20):
                row = db.execute(_locked(query, db)).first()
                if row is None:
                    return None
                if row.attempts >= self.max_attempts:
                    self._finish(db, row.id, now, error=_EXHAUSTED)
                    continue
                db.execute(
                    usage_reports.update()
                    .where(usage_reports.c.id == row.id)
                    .values(
                        lease_owner=owner,
                        lease_expires_at=now + self.lease,
                        attempts=row.attempts + 1,
                        updated_at=now,
                    )
                )
                fresh = db.execute(usage_reports.select().where(usage_reports.c.id == row.id)).one()
                return UsageClaim(self._report(fresh), owner, row.attempts + 1)
        return None

    def _held(self, report_id: str, owner: str) -> list[Any]:
        return [
            usage_reports.c.id == report_id,
            usage_reports.c.lease_owner == owner,
            usage_reports.c.status == int(RequestStatus.PENDING),
        ]

    def complete(self, report_id: str, owner: str, result: list[dict[str, Any]]) -> bool:
        """Store the result; False when the lease was lost or the report deleted."""
        now = self._now()
        with self.catalog.transaction() as db:
            done = db.execute(
                usage_reports.update()
                .where(*self._held(report_id, owner))
                .values(
                    status=int(RequestStatus.COMPLETE),
                    result=orjson.dumps(result).decode(),
                    error=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            return done.rowcount == 1

    def fail_attempt(
        self, report_id: str, owner: str, reason: str, *, retry_after: timedelta
    ) -> RequestStatus | None:
        """Retry after ``retry_after``, or Failed once the attempts are spent."""
        now = self._now()
        with self.catalog.transaction() as db:
            row = db.execute(
                _locked(usage_reports.select().where(*self._held(report_id, owner)), db)
            ).first()
            if row is None:
                return None
            if row.attempts >= self.max_attempts:
                self._finish(db, report_id, now, error=reason)
                return RequestStatus.FAILED
            db.execute(
                usage_reports.update()
                .where(usage_reports.c.id == report_id)
                .values(lease_owner=None, lease_expires_at=now + retry_after, updated_at=now)
            )
            return RequestStatus.PENDING

    @staticmethod
    def _finish(db: Connection, report_id: str, now: datetime, *, error: str) -> None:
        db.execute(
            usage_reports.update()
            .where(usage_reports.c.id == report_id)
            .values(
                status=int(RequestStatus.FAILED),
                error=error[:2000],
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )


_EXHAUSTED = "the usage report could not be computed: the worker computing it stopped, every try"
