"""Temporary build folders: a killed build's folder is removed at the next start and by the
periodic sweep; a folder that a live build (in any process) holds is never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.files import LocalFileStore
from mdr_reporting.worker import Worker
from mdr_reporting.worker.scratch import BuildFolder, sweep_build_folders
from mdr_reporting.worker.testing import FakeBuilder

# A process that opens a build folder, fills it a little, says where, and waits to be killed.
_HOLDER = """
import sys, time
from pathlib import Path
from mdr_reporting.worker.scratch import BuildFolder
folder = BuildFolder(Path(sys.argv[1]))
(folder.path / "report.csv").write_bytes(b"x" * 100_000)
(folder.path / ".build-spill").mkdir()
print(folder.path, flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder() -> Iterator[Callable[[Path], tuple[subprocess.Popen[str], Path]]]:
    started: list[subprocess.Popen[str]] = []

    def start(work: Path) -> tuple[subprocess.Popen[str], Path]:
        process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(work)], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None
        return process, Path(process.stdout.readline().strip())

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _killed(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _worker(tmp_path: Path, **options: float) -> Worker:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.migrate()
    queue = JobQueue(
        catalog, lease=timedelta(seconds=5), max_attempts=3, retention=timedelta(days=1)
    )
    return Worker(
        queue,
        LocalFileStore(tmp_path / "reports"),
        FakeBuilder(),
        work_dir=tmp_path / "work",
        **options,
    )


def test_a_killed_builds_folder_is_removed_when_the_worker_starts(
    tmp_path: Path, holder: Callable[[Path], tuple[subprocess.Popen[str], Path]]
) -> None:
    work = tmp_path / "work"
    dead, stale = holder(work)
    _killed(dead)
    live_process, live = holder(work)  # another worker process, still building
    with BuildFolder(work) as mine:  # a build of this very process
        assert stale.name.startswith(f"mdr-build-{dead.pid}-") and stale.is_dir()
        worker = _worker(tmp_path)
        worker.start()
        try:
            assert not stale.exists()
            assert live.is_dir() and (live / "report.csv").exists()
            assert mine.path.is_dir()
        finally:
            worker.stop()
    assert not mine.path.exists()  # a finished build removes its own folder
    _killed(live_process)
    assert sweep_build_folders(work) == 1
    assert list(work.iterdir()) == []


def test_the_periodic_sweep_removes_folders_of_builds_killed_later(
    tmp_path: Path, holder: Callable[[Path], tuple[subprocess.Popen[str], Path]]
) -> None:
    worker = _worker(tmp_path, sweep_interval=0.1)
    worker.start()
    try:
        process, stale = holder(tmp_path / "work")
        time.sleep(0.3)
        assert stale.is_dir()  # alive: kept by every sweep
        _killed(process)
        deadline = time.monotonic() + 20
        while stale.exists():
            assert time.monotonic() < deadline, "the periodic sweep did not remove it"
            time.sleep(0.05)
    finally:
        worker.stop()


def test_leftovers_of_the_old_layout_and_unpublished_folders_go_once_old(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    old_file = work / "mdr-build-1234-abcd.csv"
    old_engine_dir = work / ".build-xyz"
    unpublished = work / ".mdr-build-99-ab.new"
    fresh = work / "mdr-build-5678-ef.csv"
    for path in (old_engine_dir, unpublished):
        path.mkdir()
        (path / "spill").write_bytes(b"x")
    old_file.write_bytes(b"x")
    fresh.write_bytes(b"x")
    unrelated = work / "notes.txt"
    unrelated.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for path in (old_file, old_engine_dir, unpublished, unrelated):
        os.utime(path, (two_hours_ago, two_hours_ago))
    assert sweep_build_folders(work) == 3
    assert sorted(p.name for p in work.iterdir()) == ["mdr-build-5678-ef.csv", "notes.txt"]
