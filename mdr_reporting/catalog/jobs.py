"""The request table as a job queue: leases, heartbeats, retries, completion and expiry.

A worker claims a Pending request by taking a lease (``lease_owner`` and
``lease_expires_at``) and keeps it by renewing it; a lease that is not renewed
expires and any worker may claim the request again. Every write checks that the
writer still holds the lease and that the request was not deleted, so a worker
that lost its lease (or whose request was DELETEd) learns it at its next write.
All times come from the catalog's clock, so tests control them.

Concurrency: on SQLite every transaction is ``BEGIN IMMEDIATE`` (one writer at a
time), so select-then-update is safe; on PostgreSQL the selects lock their rows
with ``FOR UPDATE SKIP LOCKED``, so concurrent workers never claim one row twice
and never wait on each other. That choice lives in :func:`_locked` alone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from mdr_reporting.catalog.deliveries import enqueue_deliveries
from mdr_reporting.catalog.notify import notify_claimable
from mdr_reporting.catalog.schema import claim_turns, requests
from mdr_reporting.catalog.store import Catalog
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState

__all__ = ["Claim", "FileOwner", "JobQueue", "RetryOutcome", "Reusable"]

_CLAIM_SCAN = 20  # exhausted requests failed on the way by one claim, at most


def _locked(query: sa.Select[Any], db: Connection) -> sa.Select[Any]:
    """Row locks for the select-then-update pattern, per dialect (request rows only)."""
    if db.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=requests)
    return query  # SQLite: BEGIN IMMEDIATE already serialises every writer


@dataclass(frozen=True)
class Claim:
    """A request this worker now holds the lease of; ``attempt`` counts from 1."""

    state: RequestState
    owner: str
    attempt: int


@dataclass(frozen=True)
class RetryOutcome:
    """What a failed attempt led to: another try later, or Failed for good."""

    status: RequestStatus
    attempts: int


@dataclass(frozen=True)
class FileOwner:
    """What a request holds in the file store, for the orphan sweep.

    ``file_key`` is the file it serves (or, once deleted, still has to purge);
    ``building`` means it is Pending under a lease, so its worker may have put a
    new file and be about to mark it Complete.
    """

    file_key: str | None
    building: bool


@dataclass(frozen=True)
class Reusable:
    """A Complete request whose file another request with the same fingerprint may copy."""

    request_id: str
    file_key: str
    record_count: int
    engine: str | None


class JobQueue:
    def __init__(
        self,
        catalog: Catalog,
        *,
        lease: timedelta,
        max_attempts: int,
        retention: timedelta,
    ) -> None:
        self.catalog = catalog
        self.lease = lease
        self.max_attempts = max_attempts
        self.retention = retention

    def _now(self) -> datetime:
        return self.catalog.clock()

    def _held(self, request_id: str, owner: str) -> list[Any]:
        """The WHERE clause of every write by a lease holder."""
        return [
            requests.c.id == request_id,
            requests.c.lease_owner == owner,
            requests.c.status == int(RequestStatus.PENDING),
            requests.c.deleted_at.is_(None),
        ]

    # -- claiming -------------------------------------------------------------------------

    def claim(self, owner: str) -> Claim | None:
        """Take the lease of the next claimable Pending request, fairly across accounts.

        Claimable: not deleted, and the lease is free or expired. Fair: the account
        with the fewest requests building goes first, then the one whose turn came
        longest ago (never before), and within an account the oldest request; so one
        account's flood of requests does not hold back another's. A request whose
        attempts are used up (its last worker died) is Failed here instead.
        """
        now = self._now()
        query = _fair_claim_query(now)
        with self.catalog.transaction() as db:
            for _ in range(_CLAIM_SCAN):
                row = db.execute(_locked(query, db)).first()
                if row is None:
                    return None
                if row.attempts >= self.max_attempts:
                    self._fail(db, row.id, now, _exhausted(row.attempts))
                    continue
                attempt = row.attempts + 1
                db.execute(
                    requests.update()
                    .where(requests.c.id == row.id)
                    .values(
                        lease_owner=owner,
                        lease_expires_at=now + self.lease,
                        attempts=attempt,
                        progress=0.0,
                        started_at=now,
                        updated_at=now,
                    )
                )
                _take_turn(db, row.account_id, now)
                fresh = db.execute(requests.select().where(requests.c.id == row.id)).one()
                return Claim(Catalog._state(fresh._mapping), owner, attempt)
        return None

    def renew(self, request_id: str, owner: str) -> bool:
        """Extend the lease; False when it is lost or the request was deleted (stop building)."""
        now = self._now()
        with self.catalog.transaction() as db:
            done = db.execute(
                requests.update()
                .where(*self._held(request_id, owner))
                .values(lease_expires_at=now + self.lease)
            )
            return done.rowcount == 1

    def set_progress(self, request_id: str, owner: str, progress: float) -> bool:
        """Record progress (0..1); False when the lease is lost or the request deleted."""
        with self.catalog.transaction() as db:
            done = db.execute(
                requests.update()
                .where(*self._held(request_id, owner))
                .values(progress=min(max(progress, 0.0), 1.0))
            )
            return done.rowcount == 1

    def release(self, request_id: str, owner: str) -> bool:
        """Give the request back without spending an attempt (the worker is shutting down)."""
        with self.catalog.transaction() as db:
            done = db.execute(
                requests.update()
                .where(*self._held(request_id, owner))
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=requests.c.attempts - 1,
                    progress=0.0,
                    started_at=None,
                )
            )
            if done.rowcount == 1:
                notify_claimable(db, request_id)  # another worker may take it at once
            return done.rowcount == 1

    def record_file(self, request_id: str, owner: str, file_key: str) -> bool:
        """Note the key a build is about to put, before the put; False when the lease is lost.

        A worker killed between its put and :meth:`complete` leaves the key on the
        Pending row, so the next attempt (or the sweeper, once the request is Failed or
        deleted) removes that file: no file outlives its request.
        """
        with self.catalog.transaction() as db:
            done = db.execute(
                requests.update().where(*self._held(request_id, owner)).values(file_key=file_key)
            )
            return done.rowcount == 1

    # -- outcomes -------------------------------------------------------------------------

    def complete(
        self,
        request_id: str,
        owner: str,
        *,
        file_key: str,
        record_count: int,
        size_bytes: int,
        engine: str | None = None,
        fingerprint: str | None = None,
        reused_from: str | None = None,
    ) -> bool:
        """Mark the request Complete; False when the lease was lost (the file is not used).

        ``engine`` names the engine that built the file (shown on the request);
        ``fingerprint`` says what the file holds (worker/reuse.py), and ``reused_from``
        names the request whose file this one's is a copy of."""
        now = self._now()
        with self.catalog.transaction() as db:
            done = db.execute(
                requests.update()
                .where(*self._held(request_id, owner))
                .values(
                    status=int(RequestStatus.COMPLETE),
                    file_key=file_key,
                    record_count=record_count,
                    size_bytes=size_bytes,
                    engine=engine,
                    fingerprint=fingerprint,
                    reused_from=reused_from,
                    progress=1.0,
                    error=None,
                    completed_at=now,
                    expires_at=now + self.retention,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            if done.rowcount == 1:
                enqueue_deliveries(db, [request_id], RequestStatus.COMPLETE, now)
            return done.rowcount == 1

    def reusable(self, fingerprint: str, *, lasting: timedelta) -> Reusable | None:
        """The newest Complete, undeleted request with this ``fingerprint`` whose file is
        still there for at least ``lasting`` (so it is not expired while being copied)."""
        now = self._now()
        query = (
            sa.select(
                requests.c.id,
                requests.c.file_key,
                requests.c.record_count,
                requests.c.engine,
            )
            .where(
                requests.c.fingerprint == fingerprint,
                requests.c.status == int(RequestStatus.COMPLETE),
                requests.c.deleted_at.is_(None),
                requests.c.file_key.is_not(None),
                requests.c.expires_at > now + lasting,
            )
            .order_by(requests.c.completed_at.desc())
            .limit(1)
        )
        with self.catalog.engine.connect() as db:
            row = db.execute(query).first()
        if row is None or row.record_count is None:
            return None
        return Reusable(row.id, row.file_key, int(row.record_count), row.engine)

    def fail_attempt(
        self,
        request_id: str,
        owner: str,
        reason: str,
        *,
        retry_after: timedelta,
        spend_attempt: bool = True,
    ) -> RetryOutcome | None:
        """One attempt failed: retry after ``retry_after``, or Failed with ``reason`` when
        the attempts are used up. None when the lease was already lost.

        ``spend_attempt=False`` is for a fault of the service, not of the request (a full
        disk): the attempt is given back, so the request waits and never fails for it."""
        now = self._now()
        with self.catalog.transaction() as db:
            row = db.execute(
                _locked(requests.select().where(*self._held(request_id, owner)), db)
            ).first()
            if row is None:
                return None
            if spend_attempt and row.attempts >= self.max_attempts:
                self._fail(db, request_id, now, reason)
                return RetryOutcome(RequestStatus.FAILED, row.attempts)
            attempts = row.attempts if spend_attempt else row.attempts - 1
            db.execute(
                requests.update()
                .where(requests.c.id == request_id)
                .values(
                    lease_owner=None,
                    lease_expires_at=now + retry_after,
                    attempts=attempts,
                    progress=0.0,
                    started_at=None,
                    updated_at=now,
                )
            )
            return RetryOutcome(RequestStatus.PENDING, attempts)

    @staticmethod
    def _fail(db: Connection, request_id: str, now: datetime, reason: str) -> None:
        db.execute(
            requests.update()
            .where(requests.c.id == request_id)
            .values(
                status=int(RequestStatus.FAILED),
                error=reason[:2000],
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
        enqueue_deliveries(db, [request_id], RequestStatus.FAILED, now)

    # -- housekeeping ---------------------------------------------------------------------

    def expire_due(self, limit: int = 500) -> list[tuple[str, str | None]]:
        """Mark Complete requests past ``expires_at`` Expired; returns (id, file key) of each."""
        now = self._now()
        return self._take_files(
            [
                requests.c.status == int(RequestStatus.COMPLETE),
                requests.c.expires_at <= now,
            ],
            {"status": int(RequestStatus.EXPIRED), "file_key": None, "updated_at": now},
            limit,
            announce=RequestStatus.EXPIRED,
        )

    def purge_deleted(self, limit: int = 500) -> list[tuple[str, str | None]]:
        """Forget the files of deleted requests; returns (id, file key) of each to delete."""
        return self._take_files(
            [requests.c.deleted_at.is_not(None), requests.c.file_key.is_not(None)],
            {"file_key": None},
            limit,
        )

    def purge_failed(self, limit: int = 500) -> list[tuple[str, str | None]]:
        """Forget files a Failed request's last attempt put before it stopped; (id, key) of each."""
        return self._take_files(
            [
                requests.c.status == int(RequestStatus.FAILED),
                requests.c.file_key.is_not(None),
            ],
            {"file_key": None},
            limit,
        )

    def file_owners(self, request_ids: Collection[str]) -> dict[str, FileOwner]:
        """The :class:`FileOwner` of each of these requests that exists (by primary key)."""
        query = sa.select(
            requests.c.id, requests.c.status, requests.c.file_key, requests.c.lease_owner
        ).where(requests.c.id.in_(list(request_ids)))
        with self.catalog.reader.connect() as db:
            rows = db.execute(query).all()
        pending = int(RequestStatus.PENDING)
        return {
            r.id: FileOwner(r.file_key, r.status == pending and r.lease_owner is not None)
            for r in rows
        }

    def _take_files(
        self,
        where: list[Any],
        values: dict[str, Any],
        limit: int,
        *,
        announce: RequestStatus | None = None,
    ) -> list[tuple[str, str | None]]:
        """Lock up to ``limit`` matching rows, update them, and return their (id, file key);
        with ``announce``, queue the webhooks of that new status in the same transaction."""
        query = sa.select(requests.c.id, requests.c.file_key).where(*where).limit(limit)
        with self.catalog.transaction() as db:
            rows = db.execute(_locked(query, db)).all()
            if rows:
                db.execute(
                    requests.update()
                    .where(requests.c.id.in_([r.id for r in rows]))
                    .values(**values)
                )
                if announce is not None:
                    enqueue_deliveries(db, [r.id for r in rows], announce, self._now())
        return [(r.id, r.file_key) for r in rows]


def _fair_claim_query(now: datetime) -> sa.Select[Any]:
    """The next claimable request in fair order (see :meth:`JobQueue.claim`).

    One statement, so ``FOR UPDATE OF requests SKIP LOCKED`` still hands concurrent
    workers different rows; the per-account figures come from a grouped subquery and
    the turn table, which are read, not locked.
    """
    pending = [requests.c.status == int(RequestStatus.PENDING), requests.c.deleted_at.is_(None)]
    building = (
        sa.select(requests.c.account_id, sa.func.count().label("n"))
        .where(*pending, requests.c.lease_owner.is_not(None), requests.c.lease_expires_at > now)
        .group_by(requests.c.account_id)
        .subquery("building")
    )
    free = sa.or_(requests.c.lease_expires_at.is_(None), requests.c.lease_expires_at <= now)
    return (
        sa.select(requests)
        .select_from(
            requests.outerjoin(building, building.c.account_id == requests.c.account_id).outerjoin(
                claim_turns, claim_turns.c.account_id == requests.c.account_id
            )
        )
        .where(*pending, free)
        .order_by(
            sa.func.coalesce(building.c.n, 0),
            claim_turns.c.last_claimed_at.asc().nulls_first(),
            requests.c.created_at,
            requests.c.id,
        )
        .limit(1)  # lock one row only: other workers skip it and take the next ones
    )


def _take_turn(db: Connection, account_id: str, now: datetime) -> None:
    """Record that ``account_id`` just had its turn (an upsert on either dialect)."""
    insert: Any = (
        postgresql_insert(claim_turns)
        if db.dialect.name == "postgresql"
        else sqlite_insert(claim_turns)
    )
    db.execute(
        insert.values(account_id=account_id, last_claimed_at=now).on_conflict_do_update(
            index_elements=[claim_turns.c.account_id], set_={"last_claimed_at": now}
        )
    )


def _exhausted(attempts: int) -> str:
    return (
        f"the report could not be built in {attempts} attempts: "
        "the worker building it stopped before finishing"
    )
