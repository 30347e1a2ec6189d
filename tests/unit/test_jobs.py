"""The job queue on the catalog: leases, heartbeats, retries, completion, expiry.

Runs on SQLite always and on PostgreSQL too when MDR_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.catalog.schema import requests
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.worker.testing import ManualClock, make_request

LEASE = timedelta(seconds=30)
RETENTION = timedelta(days=30)

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("MDR_TEST_POSTGRES_URL") else [])


def _postgres_database(base_url: str) -> Iterator[str]:
    """A throwaway database on the test server, dropped afterwards."""
    name = "mdr_jobs_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(
        base_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as db:
        db.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as db:
            db.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield from _postgres_database(os.environ["MDR_TEST_POSTGRES_URL"])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def catalog(catalog_url: str, clock: ManualClock) -> Iterator[Catalog]:
    catalog = Catalog(catalog_url, clock=clock)
    catalog.migrate()
    yield catalog
    catalog.close()


@pytest.fixture
def queue(catalog: Catalog) -> JobQueue:
    return JobQueue(catalog, lease=LEASE, max_attempts=3, retention=RETENTION)


def _row(catalog: Catalog, request_id: str) -> sa.Row[tuple[object, ...]]:
    with catalog.engine.connect() as db:
        return db.execute(requests.select().where(requests.c.id == request_id)).one()


def test_claim_takes_the_oldest_pending_request_with_a_lease(
    catalog: Catalog, queue: JobQueue, clock: ManualClock
) -> None:
    first = make_request(catalog)
    clock.advance(1)
    second = make_request(catalog)
    claim = queue.claim("w1")
    assert claim is not None
    assert claim.state.id == first.id
    assert claim.attempt == 1
    assert claim.state.attempts == 1
    row = _row(catalog, first.id)
    assert row.lease_owner == "w1"
    assert row.lease_expires_at == clock() + LEASE
    other = queue.claim("w2")
    assert other is not None
    assert other.state.id == second.id
    assert queue.claim("w3") is None


def test_a_live_lease_is_not_taken_an_expired_one_is(
    catalog: Catalog, queue: JobQueue, clock: ManualClock
) -> None:
    state = make_request(catalog)
    assert queue.claim("w1") is not None
    clock.advance(LEASE - timedelta(seconds=1))
    assert queue.claim("w2") is None
    clock.advance(2)
    takeover = queue.claim("w2")
    assert takeover is not None
    assert takeover.state.id == state.id
    assert takeover.attempt == 2
    assert not queue.renew(state.id, "w1"), "the old owner lost its lease"
    assert not queue.set_progress(state.id, "w1", 0.5)


def test_renew_extends_the_lease_only_for_the_owner(
    catalog: Catalog, queue: JobQueue, clock: ManualClock
) -> None:
    state = make_request(catalog)
    assert queue.claim("w1") is not None
    clock.advance(20)
    assert queue.renew(state.id, "w1")
    assert _row(catalog, state.id).lease_expires_at == clock() + LEASE
    assert not queue.renew(state.id, "intruder")
    clock.advance(20)  # 40 s after the claim, 20 s after the renewal: still held
    assert queue.claim("w2") is None


def test_delete_makes_heartbeat_and_progress_fail_and_is_never_claimed(
    catalog: Catalog, queue: JobQueue, clock: ManualClock
) -> None:
    state = make_request(catalog)
    assert queue.claim("w1") is not None
    assert queue.set_progress(state.id, "w1", 0.25)
    assert catalog.get_request(state.id) is not None
    assert catalog.get_request(state.id).progress == 0.25  # type: ignore[union-attr]
    catalog.delete_request(state.id)
    assert not queue.renew(state.id, "w1")
    assert not queue.set_progress(state.id, "w1", 0.5)
    assert not queue.complete(state.id, "w1", file_key="k", record_count=1, size_bytes=1)
    clock.advance(LEASE * 2)
    assert queue.claim("w2") is None


def test_complete_records_the_file_and_the_expiry(
    catalog: Catalog, queue: JobQueue, clock: ManualClock
) -> None:
    state = make_request(catalog)
    assert queue.claim("w1") is not None
    clock.advance(5)
    assert queue.complete(state.id, "w1", file_key="a/b.csv", record_count=7, size_bytes=99)
    done = catalog.get_request(state.id)
    assert done is not None
    assert done.status is RequestStatus.COMPLETE
    assert (done.record_count, done.size_bytes, done.file_key) == (7, 99, "a/b.csv")
    assert done.completed_at == clock()
    assert done.expires_at == clock() + RETENTION
    assert done.progress == 1.0
    assert _row(catalog, state.id).lease_owner is None
    assert not queue.complete(state.id, "w1", file_key="x", record_count=1, size_bytes=1)


def test_failed_attempts_retry_after_a_delay_then_fail_with_the_reason(
    catalog: Catalog, queue: JobQueue, clock: ManualClock
) -> None:
    state = make_request(catalog)
    for attempt in (1, 2):
        claim = queue.claim("w1")
        assert claim is not None
        assert claim.attempt == attempt
        outcome = queue.fail_attempt(state.id, "w1", "boom", retry_after=timedelta(seconds=10))
        assert outcome is not None
        assert outcome.status is RequestStatus.PENDING
        assert queue.claim("w1") is None, "not before the retry delay"
        clock.advance(10)
    claim = queue.claim("w1")
    assert claim is not None
    assert claim.attempt == 3
    outcome = queue.fail_attempt(state.id, "w1", "disk full", retry_after=timedelta(0))
    assert outcome is not None
    assert outcome.status is RequestStatus.FAILED
    failed = catalog.get_request(state.id)
    assert failed is not None
    assert failed.status is RequestStatus.FAILED
    assert failed.error == "disk full"
    assert failed.attempts == 3
    assert queue.claim("w1") is None
    assert queue.fail_attempt(state.id, "w1", "late", retry_after=timedelta(0)) is None


def test_a_request_whose_last_worker_died_is_failed_not_claimed(
    catalog: Catalog, queue: JobQueue, clock: ManualClock
) -> None:
    state = make_request(catalog)
    for _ in range(3):  # three workers each die holding the lease
        assert queue.claim("doomed") is not None
        clock.advance(LEASE + timedelta(seconds=1))
    assert queue.claim("w2") is None
    failed = catalog.get_request(state.id)
    assert failed is not None
    assert failed.status is RequestStatus.FAILED
    assert failed.error is not None
    assert "3 attempts" in failed.error


def test_release_hands_the_request_back_without_spending_an_attempt(
    catalog: Catalog, queue: JobQueue
) -> None:
    state = make_request(catalog)
    assert queue.claim("w1") is not None
    assert queue.release(state.id, "w1")
    assert _row(catalog, state.id).attempts == 0
    again = queue.claim("w2")
    assert again is not None
    assert again.attempt == 1


def test_expiry_marks_complete_requests_expired_after_the_retention(
    catalog: Catalog, queue: JobQueue, clock: ManualClock
) -> None:
    old = make_request(catalog)
    assert queue.claim("w") is not None
    queue.complete(old.id, "w", file_key=f"{old.id}/f.csv", record_count=1, size_bytes=1)
    clock.advance(timedelta(days=1))
    young = make_request(catalog)
    assert queue.claim("w") is not None
    queue.complete(young.id, "w", file_key=f"{young.id}/f.csv", record_count=1, size_bytes=1)
    pending = make_request(catalog)

    clock.advance(RETENTION - timedelta(days=1, seconds=1))
    assert queue.expire_due() == []
    clock.advance(1)
    assert queue.expire_due() == [(old.id, f"{old.id}/f.csv")]
    assert queue.expire_due() == []
    expired = catalog.get_request(old.id)
    assert expired is not None
    assert expired.status is RequestStatus.EXPIRED
    assert expired.file_key is None
    for request_id, status in ((young.id, 2), (pending.id, 1)):
        current = catalog.get_request(request_id)
        assert current is not None
        assert current.status == status


def test_purge_deleted_returns_the_files_of_deleted_requests_once(
    catalog: Catalog, queue: JobQueue
) -> None:
    state = make_request(catalog)
    assert queue.claim("w") is not None
    queue.complete(state.id, "w", file_key=f"{state.id}/f.csv", record_count=1, size_bytes=1)
    kept = make_request(catalog)
    assert queue.purge_deleted() == []
    catalog.delete_request(state.id)
    assert queue.purge_deleted() == [(state.id, f"{state.id}/f.csv")]
    assert queue.purge_deleted() == []
    assert catalog.get_request(kept.id) is not None


def test_concurrent_claims_never_hand_out_a_request_twice(
    catalog: Catalog, queue: JobQueue
) -> None:
    ids = {make_request(catalog).id for _ in range(12)}
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def claimer(n: int) -> None:
        barrier.wait()
        while (claim := queue.claim(f"w{n}")) is not None:
            with lock:
                claimed.append(claim.state.id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)
