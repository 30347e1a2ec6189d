"""The orphan sweep: report files no request owns go, files a request owns or may own stay.

Runs on every configured catalog backend (the conftest's ``catalog`` fixture).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.files import LocalFileStore, StoredFile
from mdr_reporting.worker import Sweeper, Worker
from mdr_reporting.worker.testing import FakeBuilder, make_request

LEASE = timedelta(seconds=30)


@pytest.fixture
def queue(catalog: Catalog) -> JobQueue:
    return JobQueue(catalog, lease=LEASE, max_attempts=3, retention=timedelta(days=30))


@pytest.fixture
def store(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "reports")


def _put(store: LocalFileStore, tmp_path: Path, key: str, age: float = 3600.0) -> None:
    source = tmp_path / "build.tmp"
    source.write_bytes(key.encode())
    store.put(key, source)
    stamp = time.time() - age
    os.utime(store.path(key), (stamp, stamp))


def _keys(store: LocalFileStore) -> set[str]:
    return {f.key for f in store.list()}


def _complete(queue: JobQueue, catalog: Catalog, key_name: str) -> str:
    state = make_request(catalog)
    claim = queue.claim("w/0")
    assert claim is not None and claim.state.id == state.id
    key = f"{state.id}/{key_name}"
    assert queue.complete(state.id, "w/0", file_key=key, record_count=1, size_bytes=1)
    return state.id


def test_list_names_complete_files_with_their_times_and_skips_staging(
    store: LocalFileStore, tmp_path: Path
) -> None:
    _put(store, tmp_path, "req-1/a.csv", age=120)
    (store.root / "req-1" / ".tmp-0123-b.csv").write_bytes(b"half")
    listed = list(store.list())
    assert [(f.key, f.size) for f in listed] == [("req-1/a.csv", len(b"req-1/a.csv"))]
    assert isinstance(listed[0], StoredFile)
    age = datetime.now(UTC) - listed[0].modified
    assert timedelta(seconds=110) < age < timedelta(seconds=200)


def test_remove_partials_takes_only_old_staging_files(
    store: LocalFileStore, tmp_path: Path
) -> None:
    _put(store, tmp_path, "req-1/a.csv")
    old = store.root / "req-1" / ".tmp-0123-b.csv"
    young = store.root / "req-1" / ".tmp-4567-c.csv"
    old.write_bytes(b"half")
    young.write_bytes(b"half")
    stamp = time.time() - 3600
    os.utime(old, (stamp, stamp))
    assert store.remove_partials(datetime.now(UTC) - timedelta(minutes=5)) == 1
    assert not old.exists() and young.exists()
    assert _keys(store) == {"req-1/a.csv"}


def test_the_sweep_removes_unowned_files_and_keeps_owned_ones(
    catalog: Catalog, queue: JobQueue, store: LocalFileStore, tmp_path: Path
) -> None:
    expired = _complete(queue, catalog, "old.csv")  # the sweeper died before deleting its file
    _put(store, tmp_path, f"{expired}/old.csv")
    catalog.clock.advance(days=31)  # type: ignore[attr-defined]
    assert queue.expire_due() == [(expired, f"{expired}/old.csv")]

    served = _complete(queue, catalog, "live.csv")
    _put(store, tmp_path, f"{served}/live.csv")
    _put(store, tmp_path, f"{served}/earlier-build.csv")  # killed after put, built again later
    _put(store, tmp_path, f"{served}/fresh-orphan.csv", age=10)  # within the grace
    _put(store, tmp_path, "no-such-request/x.csv")

    deleted = _complete(queue, catalog, "gone.csv")  # deleted, its file not yet purged
    _put(store, tmp_path, f"{deleted}/gone.csv")
    assert catalog.delete_request(deleted) is not None

    building = make_request(catalog)  # put, not yet marked Complete
    assert queue.claim("w/1") is not None
    _put(store, tmp_path, f"{building.id}/just-put.csv")

    failed_retry = make_request(catalog)  # failed after its put: back in the queue, no lease
    assert queue.claim("w/2") is not None
    _put(store, tmp_path, f"{failed_retry.id}/dead.csv")
    assert queue.fail_attempt(failed_retry.id, "w/2", "boom", retry_after=timedelta(0))

    sweeper = Sweeper(queue, store, orphan_grace=timedelta(minutes=1))
    assert sweeper.sweep_orphans() == 4
    assert _keys(store) == {
        f"{served}/live.csv",
        f"{served}/fresh-orphan.csv",
        f"{deleted}/gone.csv",
        f"{building.id}/just-put.csv",
    }
    assert not (store.root / "no-such-request").exists()
    assert sweeper.sweep_orphans() == 0


def test_a_sweep_between_put_and_complete_leaves_the_build_whole(
    catalog: Catalog, queue: JobQueue, store: LocalFileStore, tmp_path: Path
) -> None:
    """The race the grace alone would not cover: a zero grace, swept right after the put."""
    sweeper = Sweeper(queue, store, orphan_grace=timedelta(0))
    swept: list[int] = []

    class SweepAfterPut(LocalFileStore):
        def put(self, key: str, source: Path, *, filename: str | None = None) -> int:
            size = super().put(key, source, filename=filename)
            time.sleep(0.01)  # the file is strictly older than the sweep's cutoff
            swept.append(sweeper.sweep_orphans())
            return size

    state = make_request(catalog)
    builder = FakeBuilder(5)
    (tmp_path / "work").mkdir()
    worker = Worker(queue, SweepAfterPut(store.root), builder, work_dir=tmp_path / "work")
    assert worker.run_once()
    done = catalog.get_request(state.id)
    assert done is not None and done.file_key is not None
    assert swept == [0]
    stream, _ = store.open(done.file_key)
    with stream:
        assert stream.read() == builder.render(done)


def test_the_first_pass_sweeps_orphans_then_every_nth(
    catalog: Catalog, queue: JobQueue, store: LocalFileStore, tmp_path: Path
) -> None:
    sweeper = Sweeper(queue, store, orphan_grace=timedelta(0), orphan_every=3)
    _put(store, tmp_path, "a/x.csv")
    assert sweeper.sweep().orphans == 1
    _put(store, tmp_path, "b/x.csv")
    assert [sweeper.sweep().orphans for _ in range(3)] == [0, 0, 1]
    assert _keys(store) == set()


def test_the_default_grace_is_at_least_two_leases(queue: JobQueue, store: LocalFileStore) -> None:
    assert Sweeper(queue, store).orphan_grace == timedelta(minutes=5)
    long = JobQueue(queue.catalog, lease=timedelta(hours=1), max_attempts=3, retention=LEASE)
    assert Sweeper(long, store).orphan_grace == timedelta(hours=2)
