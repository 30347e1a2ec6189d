"""A worker process killed with SIGKILL mid-build: after its lease expires another takes over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.schema import requests
from mdr_reporting.files import LocalFileStore
from mdr_reporting.worker.testing import FakeBuilder, make_request

LEASE_SECONDS = 1.0
ROWS = 200


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.migrate()
    yield catalog
    catalog.close()


@pytest.fixture
def spawn(tmp_path: Path, catalog: Catalog) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(worker_id: str, row_delay: float) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{worker_id}.log").open("wb")
        command = [
            sys.executable,
            "-m",
            "mdr_reporting.worker.testing",
            "--catalog",
            catalog.url,
            "--files",
            str(tmp_path / "reports"),
            "--work-dir",
            str(tmp_path / "work"),
            "--rows",
            str(ROWS),
            "--row-delay",
            str(row_delay),
            "--lease",
            str(LEASE_SECONDS),
            "--worker-id",
            worker_id,
        ]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def _row(catalog: Catalog, request_id: str) -> sa.Row[tuple[object, ...]]:
    with catalog.engine.connect() as db:
        return db.execute(requests.select().where(requests.c.id == request_id)).one()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_killed_worker_is_replaced_after_its_lease_expires(
    tmp_path: Path, catalog: Catalog, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    state = make_request(catalog)
    first = spawn("worker-a", row_delay=0.05)  # 200 rows x 50 ms: 10 s, far longer than the test
    _wait(
        lambda: (row := _row(catalog, state.id)).lease_owner == "worker-a/0" and row.progress > 0,
        timeout=30,
        what="worker-a to start building",
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    left = [p for p in (tmp_path / "work").iterdir() if p.name.startswith("mdr-build-")]
    assert len(left) == 1 and (left[0] / "report.csv").exists()  # the killed build's folder
    killed = _row(catalog, state.id)
    assert (killed.status, killed.attempts, killed.lease_owner) == (1, 1, "worker-a/0")

    second = spawn("worker-b", row_delay=0.0)
    _wait(lambda: _row(catalog, state.id).status != 1, timeout=30, what="worker-b to finish")
    done = _row(catalog, state.id)
    assert done.status == 2, done.error
    assert done.attempts == 2
    assert done.completed_at >= killed.lease_expires_at, "taken over only after the lease expired"
    assert done.record_count == ROWS

    stored = catalog.get_request(state.id)
    assert stored is not None
    assert stored.file_key is not None
    store = LocalFileStore(tmp_path / "reports")
    stream, size = store.open(stored.file_key)
    with stream:
        assert stream.read() == FakeBuilder(ROWS).render(stored)
    assert size == done.size_bytes
    assert [p.name for p in store.root.rglob("*") if p.is_file()] == [Path(stored.file_key).name]

    assert not left[0].exists()  # removed when worker-b started
    # worker-b's own folder goes as its build returns, just after the request completes
    _wait(lambda: not any((tmp_path / "work").iterdir()), timeout=10, what="an empty work dir")

    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=10) is not None
