"""Idle workers wake on NOTIFY (PostgreSQL), and a file put by a dead attempt never outlives it.

The NOTIFY tests need PostgreSQL (``MDR_TEST_POSTGRES_URL``); the file tests run on
every configured catalog.
"""

from __future__ import annotations

import queue as stdqueue
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.catalog.notify import Listener
from mdr_reporting.catalog.schema import requests
from mdr_reporting.files import LocalFileStore
from mdr_reporting.worker import Sweeper, Worker
from mdr_reporting.worker.testing import FakeBuilder, ManualClock, make_request
from tests.conftest import POSTGRES_URL, postgres_schema_url

LEASE = timedelta(seconds=30)

needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="MDR_TEST_POSTGRES_URL not set")


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(catalog_url: str, manual_clock: ManualClock) -> Iterator[Catalog]:
    catalog = Catalog(catalog_url, clock=manual_clock)
    catalog.migrate()
    yield catalog
    catalog.close()


def _listen(url: str) -> tuple[Listener, stdqueue.Queue[str]]:
    """A started listener whose wake-ups are counted in a queue, once it listens."""
    woken: stdqueue.Queue[str] = stdqueue.Queue()
    listener = Listener(url, lambda: woken.put("wake"), check_stop_every=0.05)
    listener.start()
    assert listener.listening.wait(30), "the listener never connected"
    assert woken.get(timeout=30) == "wake"  # the wake of the (re)connect itself
    return listener, woken


@needs_postgres
def test_a_created_request_wakes_a_listener_on_its_own_schema_only(tmp_path: Path) -> None:
    schemas = [postgres_schema_url(), postgres_schema_url()]
    ours_url, other_url = (next(s) for s in schemas)
    ours, other = Catalog(ours_url), Catalog(other_url)
    try:
        ours.migrate()
        other.migrate()
        listener, woken = _listen(ours_url)
        try:
            make_request(other)  # another schema's channel: no wake-up here
            make_request(ours)
            assert woken.get(timeout=30) == "wake"
            # notifications arrive in commit order, so the other schema's would be here now
            assert woken.empty()
        finally:
            listener.stop()
    finally:
        ours.close()
        other.close()
        for schema in schemas:
            next(schema, None)  # drop the schemas


@needs_postgres
def test_an_idle_worker_claims_a_new_request_without_waiting_for_its_poll(
    tmp_path: Path,
) -> None:
    schema = postgres_schema_url()
    url = next(schema)
    catalog = Catalog(url)
    catalog.migrate()
    queue = JobQueue(catalog, lease=LEASE, max_attempts=3, retention=timedelta(days=30))
    # a poll interval far past the test's timeout: only the NOTIFY can start the build
    worker = Worker(queue, LocalFileStore(tmp_path / "files"), FakeBuilder(2), poll_interval=3600)
    listener = Listener(url, worker.wake, check_stop_every=0.05)
    try:
        worker.start()
        listener.start()
        assert listener.listening.wait(30)
        state = make_request(catalog)
        deadline = time.monotonic() + 30
        while (status := _status(catalog, state.id)) == 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 2, "the request was not built after its NOTIFY"
    finally:
        listener.stop()
        worker.stop()
        catalog.close()
        next(schema, None)


def _status(catalog: Catalog, request_id: str) -> int:
    with catalog.engine.connect() as db:
        query = sa.select(requests.c.status).where(requests.c.id == request_id)
        return int(db.execute(query).scalar_one())


def _put_by_dead_attempt(
    store: Catalog, queue: JobQueue, files: LocalFileStore, tmp_path: Path
) -> tuple[str, str]:
    """A request whose first worker recorded and put its file, then died before Complete."""
    state = make_request(store)
    claim = queue.claim("dead-worker/0")
    assert claim is not None
    key = f"{state.id}/dead.csv"
    assert queue.record_file(state.id, "dead-worker/0", key)
    source = tmp_path / "dead.csv"
    source.write_bytes(b"partial,report\r\n")
    files.put(key, source)
    return state.id, key


def test_the_next_attempt_removes_the_file_a_dead_attempt_put(
    store: Catalog, manual_clock: ManualClock, tmp_path: Path
) -> None:
    queue = JobQueue(store, lease=LEASE, max_attempts=3, retention=timedelta(days=30))
    files = LocalFileStore(tmp_path / "files")
    request_id, dead_key = _put_by_dead_attempt(store, queue, files, tmp_path)
    manual_clock.advance(LEASE + timedelta(seconds=1))  # the dead worker's lease runs out
    worker = Worker(queue, files, FakeBuilder(2))
    assert worker.run_once("next-worker/0")
    state = store.get_request(request_id)
    assert state is not None
    assert state.status == 2
    assert state.attempts == 2
    assert state.file_key is not None
    assert state.file_key != dead_key
    assert not files.exists(dead_key)
    stored = sorted(p.relative_to(files.root).as_posix() for p in files.root.rglob("*"))
    assert stored == [request_id, state.file_key]  # its folder and the one file


def test_the_sweeper_removes_the_file_of_a_request_failed_after_a_dead_attempt(
    store: Catalog, manual_clock: ManualClock, tmp_path: Path
) -> None:
    queue = JobQueue(store, lease=LEASE, max_attempts=1, retention=timedelta(days=30))
    files = LocalFileStore(tmp_path / "files")
    request_id, dead_key = _put_by_dead_attempt(store, queue, files, tmp_path)
    manual_clock.advance(LEASE + timedelta(seconds=1))
    assert queue.claim("next-worker/0") is None  # attempts used up: Failed on the way
    state = store.get_request(request_id)
    assert state is not None
    assert state.status == 3
    assert files.exists(dead_key)
    assert Sweeper(queue, files).sweep().purged == 1
    assert not files.exists(dead_key)
    assert list(files.root.rglob("*")) == []
    assert Sweeper(queue, files).sweep().purged == 0
