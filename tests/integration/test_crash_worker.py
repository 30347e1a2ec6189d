"""Crash matrix (b): report workers killed with SIGKILL at random moments while building.

After every kill, no request is Complete with a short or missing file; in the end
every request completes with a whole file, and the orphan sweep leaves exactly the
files that Complete requests own (a kill between put and Complete leaves one).
"""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.catalog.schema import requests
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.files import LocalFileStore
from mdr_reporting.worker import Sweeper
from mdr_reporting.worker.testing import FakeBuilder, make_request
from tests.integration.crash import Processes, go, kill9, processes, seeded, wait_for

KILLS = 12
ROWS = 60
LEASE = 0.5
FORMATS = ("csv", "csv.gz", "jsonl.gz")


def _worker(
    procs: Processes, catalog: Catalog, tmp_path: Path, name: str, delay: float
) -> subprocess.Popen[bytes]:
    """A worker process with the fake builder, imported; it starts on :func:`go`."""
    return procs.start_ready(
        name,
        "mdr_reporting.worker.testing",
        ["mdr_reporting.worker.testing"],
        *("--catalog", catalog.url, "--files", str(tmp_path / "reports")),
        *("--work-dir", str(tmp_path / "work"), "--rows", str(ROWS)),
        *("--row-delay", str(delay), "--lease", str(LEASE), "--max-attempts", "100"),
        *("--worker-id", name),
    )


def _rows(catalog: Catalog) -> list[sa.Row[tuple[object, ...]]]:
    with catalog.engine.connect() as db:
        return list(db.execute(requests.select()).all())


def _check_complete_files_whole(catalog: Catalog, store: LocalFileStore, when: str) -> int:
    """Every Complete request's file is there with exactly the bytes of its build."""
    complete = 0
    for row in _rows(catalog):
        if row.status != RequestStatus.COMPLETE:
            continue
        state = catalog.get_request(str(row.id))
        assert state is not None and state.file_key is not None, when
        path = store.path(state.file_key)
        assert path.is_file(), f"{when}: Complete request {row.id} has no file"
        assert path.read_bytes() == FakeBuilder(ROWS).render(state), f"{when}: {row.id} short"
        assert path.stat().st_size == row.size_bytes, when
        complete += 1
    return complete


def test_killed_builds_complete_later_with_whole_files(tmp_path: Path) -> None:
    chance = seeded("worker crash")
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.migrate()
    store = LocalFileStore(tmp_path / "reports")
    made = 0
    try:
        with processes(tmp_path) as procs:
            following = _worker(procs, catalog, tmp_path, "w00", delay=0.004)
            for kill in range(KILLS):
                pending = [r for r in _rows(catalog) if r.status == RequestStatus.PENDING]
                for _ in range(max(0, 2 - len(pending))):
                    make_request(catalog, format=FORMATS[made % len(FORMATS)])
                    made += 1
                name, worker = f"w{kill:02d}", following
                go(worker)
                following = _worker(procs, catalog, tmp_path, f"w{kill + 1:02d}", delay=0.004)
                wait_for(
                    lambda name=name: any(
                        str(r.lease_owner or "").startswith(name) for r in _rows(catalog)
                    ),
                    30,
                    f"{name} to claim a request",
                )
                time.sleep(chance.uniform(0.0, 0.6))  # ~0.4 s a build: early, late, between
                assert kill9(worker), procs.log(name)
                _check_complete_files_whole(catalog, store, f"after kill {kill}")

            finisher = _worker(procs, catalog, tmp_path, "finisher", delay=0.0)
            go(finisher)
            wait_for(
                lambda: all(r.status != RequestStatus.PENDING for r in _rows(catalog)),
                60,
                "the last worker to finish every request",
            )
            rows = _rows(catalog)
            assert {r.status for r in rows} == {RequestStatus.COMPLETE}, [r.error for r in rows]
            assert _check_complete_files_whole(catalog, store, "at the end") == made
            assert sum(r.attempts for r in rows) > made, "some builds were killed mid-way"

        queue = JobQueue(
            catalog,
            lease=timedelta(seconds=LEASE),
            max_attempts=100,
            retention=timedelta(days=30),
        )
        orphans = Sweeper(queue, store, orphan_grace=timedelta(0)).sweep_orphans()
        print(f"{made} requests, {sum(r.attempts for r in rows)} attempts, {orphans} orphan(s)")
        owned = {str(catalog.get_request(str(r.id)).file_key) for r in rows}
        on_disk = {p.relative_to(store.root).as_posix() for p in store.root.rglob("*")}
        assert {p for p in on_disk if "/" in p} == owned, "no orphan or partial file is left"
    finally:
        catalog.close()
