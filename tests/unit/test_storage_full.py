"""Telling a full disk apart from other failures, and where that answer is used.

The real full disk (a tmpfs filled up) is tests/integration/test_full_disk.py, which
needs root; these cover the same mapping on any machine.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.domain.errors import storage_full
from mdr_reporting.files import LocalFileStore
from mdr_reporting.lake.local import LocalLake
from mdr_reporting.worker import Worker
from mdr_reporting.worker.testing import FakeBuilder, make_request
from tests.conftest import Api
from tests.records import ndjson, record


def _chained() -> Exception:
    try:
        try:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        except OSError as inner:
            raise RuntimeError("writing the part failed") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (_chained(), True),
        (RuntimeError('IO Error: Could not write file "x": No space left on device'), True),
        (sqlite3.OperationalError("database or disk is full"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("no space in this string"), False),
    ],
)
def test_storage_full_reads_errnos_messages_and_causes(exc: BaseException, full: bool) -> None:
    assert storage_full(exc) is full


def test_ingest_on_a_full_disk_is_507_and_stores_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalLake, "_write_at", no_space)
    headers = {**api.headers("acct-a", "ingest"), "Content-Type": "application/x-ndjson"}
    answer = api.client.post("/ingest/mdrs", content=ndjson([record(1)]), headers=headers)
    assert answer.status_code == 507, answer.text
    assert answer.json()["errors"][0]["code"] == "insufficient_storage"
    monkeypatch.undo()
    lake = LocalLake(api.services.settings.data_dir / "lake")
    assert lake.stats().rows == 0
    assert not list((lake.root / "data").glob("*/*.parquet"))


def test_a_build_on_a_full_disk_waits_without_spending_attempts(
    catalog: Catalog, tmp_path: Path
) -> None:
    queue = JobQueue(catalog, lease=timedelta(seconds=30), max_attempts=1, retention=timedelta(1))

    class FullDisk(FakeBuilder):
        def build(self, request, out_path, *, progress, cancelled):  # type: ignore[no-untyped-def]
            out_path.write_bytes(b"half a rep")
            raise OSError(errno.ENOSPC, "No space left on device")

    state = make_request(catalog)
    (tmp_path / "work").mkdir()
    store = LocalFileStore(tmp_path / "reports")
    worker = Worker(queue, store, FullDisk(), retry_after=timedelta(0), work_dir=tmp_path / "work")
    for _ in range(3):  # far past max_attempts=1: a full disk is never the request's fault
        assert worker.run_once()
    waiting = catalog.get_request(state.id)
    assert waiting is not None and (waiting.status, waiting.attempts) == (1, 0)
    assert not list((tmp_path / "work").iterdir()) and not list(store.list())

    worker.builder = FakeBuilder(2)
    assert worker.run_once()
    done = catalog.get_request(state.id)
    assert done is not None and done.status == 2
