"""The same report twice: completed from a copy of the first one's file (worker/reuse.py).

A real catalog (SQLite), lake, DuckDB engine, file store and worker: the second equal
request is Complete with the same bytes under its own key; deleting or expiring either
request removes only its own file; a new version in a day of the window means a build.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.catalog.schema import requests
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.engines.duckdb import DuckDBEngine
from mdr_reporting.files.local import LocalFileStore
from mdr_reporting.lake.local import LocalLake
from mdr_reporting.worker.lake_builder import LakeReportBuilder
from mdr_reporting.worker.reuse import REUSE_MARGIN, ReusingBuilder
from mdr_reporting.worker.sweeper import Sweeper
from mdr_reporting.worker.testing import ManualClock, make_request
from mdr_reporting.worker.worker import Worker
from tests.records import record, table

WINDOW = {
    "start_time": "2026-03-01T00:00:00Z",
    "end_time": "2026-03-02T00:00:00Z",
    "record_types": [1, 2, 3],
}


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
        self.catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}", clock=self.clock)
        self.catalog.migrate()
        self.queue = JobQueue(
            self.catalog,
            lease=timedelta(seconds=30),
            max_attempts=3,
            retention=timedelta(days=1),
        )
        self.lake = LocalLake(tmp_path / "lake")
        self.lake.append(table([record(n, account_id="acct-01") for n in range(50)]))
        self.files = LocalFileStore(tmp_path / "files")
        builder = ReusingBuilder(LakeReportBuilder(self.lake, DuckDBEngine()), self.queue)
        self.worker = Worker(self.queue, self.files, builder, work_dir=tmp_path / "work")

    def report(self, **body: object) -> RequestState:
        state = make_request(self.catalog, account_id="acct-01", **{**WINDOW, **body})
        assert self.worker.run_once()
        done = self.catalog.get_request(state.id)
        assert done is not None and done.status is RequestStatus.COMPLETE
        return done

    def row(self, request_id: str) -> sa.Row[tuple[object, ...]]:
        with self.catalog.engine.connect() as db:
            return db.execute(requests.select().where(requests.c.id == request_id)).one()

    def content(self, state: RequestState) -> bytes:
        assert state.file_key is not None
        handle, _ = self.files.open(state.file_key)
        with handle:
            return handle.read()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    made = Setup(tmp_path)
    yield made
    made.catalog.close()


def test_an_equal_request_is_completed_from_a_copy_with_its_own_key_and_expiry(
    setup: Setup,
) -> None:
    first = setup.report()
    setup.clock.advance(timedelta(hours=1))
    second = setup.report()
    assert second.file_key != first.file_key
    assert setup.content(second) == setup.content(first)
    assert second.record_count == first.record_count == 50
    assert second.size_bytes == first.size_bytes
    assert second.expires_at == first.expires_at + timedelta(hours=1)  # its own expiry
    first_row, second_row = setup.row(first.id), setup.row(second.id)
    assert first_row.fingerprint == second_row.fingerprint is not None
    assert (first_row.reused_from, second_row.reused_from) == (None, first.id)


def test_deleting_or_expiring_either_request_removes_only_its_own_file(setup: Setup) -> None:
    first = setup.report()
    second = setup.report()
    third = setup.report()
    assert setup.row(third.id).reused_from == first.id  # the newest equal one may be any
    sweeper = Sweeper(setup.queue, setup.files)
    setup.catalog.delete_request(first.id)
    sweeper.sweep()
    assert not setup.files.exists(str(first.file_key))
    assert setup.content(second) == setup.content(third)  # the copies are untouched
    setup.clock.advance(timedelta(days=1, seconds=1))  # past every expiry
    sweeper.sweep()
    assert not setup.files.exists(str(second.file_key))
    assert not setup.files.exists(str(third.file_key))
    assert list(setup.files.list()) == []


def test_a_different_query_or_a_new_version_in_the_window_is_built(setup: Setup) -> None:
    first = setup.report()
    other_zone = setup.report(timezone="Europe/London")
    assert setup.row(other_zone.id).reused_from is None
    assert setup.row(other_zone.id).fingerprint != setup.row(first.id).fingerprint
    # A new day outside the window changes nothing the report reads: still reused.
    setup.lake.append(
        table([record(0, id="later", account_id="acct-01", created_at="2026-03-05T10:00:00+00:00")])
    )
    assert setup.row(setup.report().id).reused_from == first.id
    # A new version inside the window: built afresh, and it shows the new status.
    setup.lake.append(
        table(
            [
                record(
                    1,
                    account_id="acct-01",
                    status="delivered",
                    updated_at="2026-03-01T12:00:00+00:00",
                )
            ]
        )
    )
    rebuilt = setup.report()
    assert setup.row(rebuilt.id).reused_from is None
    assert b",delivered," in setup.content(rebuilt)
    assert b",delivered," not in setup.content(first)


def test_a_source_that_expires_soon_or_is_deleted_is_not_reused(setup: Setup) -> None:
    first = setup.report()
    setup.clock.advance(timedelta(days=1) - REUSE_MARGIN)  # first expires within the margin
    second = setup.report()
    assert setup.row(second.id).reused_from is None
    third = setup.report()
    assert setup.row(third.id).reused_from == second.id
    setup.catalog.delete_request(second.id)
    setup.catalog.delete_request(third.id)
    fingerprint = str(setup.row(first.id).fingerprint)
    assert setup.queue.reusable(fingerprint, lasting=REUSE_MARGIN) is None
