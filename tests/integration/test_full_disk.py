"""A full disk: the data folder on a 4 MB tmpfs that the test fills up.

Ingest answers 507 and stores nothing of the batch; a report build fails its attempt
cleanly (no partial file) and waits without spending its attempts; the server keeps
serving; once space is freed the request completes and ingest works again. Mounting
needs root (CAP_SYS_ADMIN): elsewhere the test is skipped, saying so.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.catalog.schema import requests
from mdr_reporting.lake.manifest import read_manifest
from tests.acceptance.helpers import free_port
from tests.integration.crash import PYTHON, processes, wait_for
from tests.records import BASE, record

ROWS = 3000
MARGIN = 128 * 1024  # left free: room for the catalog's small writes, not for a batch or a report


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("the full-disk test mounts a 4 MB tmpfs, which needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def _batch(first: int) -> bytes:
    """Records with bodies that do not compress, so a batch needs real space."""
    rows = [
        record(first + n, status="delivered", message_body=secrets.token_urlsafe(150), tags=None)
        for n in range(ROWS)
    ]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def _fill(disk: Path) -> Path:
    """Fill the file system, then free MARGIN bytes."""
    filler = disk / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb", buffering=0) as handle:  # unbuffered: close() has nothing left to write
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    os.truncate(filler, max(filler.stat().st_size - MARGIN, 0))
    return filler


def _lake_files(lake: Path) -> tuple[int, set[str], set[str]]:
    """Rows the manifest names, the files it names, and the data files on disk."""
    manifest = read_manifest(lake)
    named = {e.path for entries in manifest.days.values() for e in entries}
    rows = sum(e.rows for entries in manifest.days.values() for e in entries)
    on_disk = {p.relative_to(lake).as_posix() for p in (lake / "data").glob("*/*.parquet")}
    return rows, named, on_disk


def _row(catalog: Catalog, request_id: str) -> sa.Row[tuple[object, ...]]:
    with catalog.engine.connect() as db:
        return db.execute(requests.select().where(requests.c.id == request_id)).one()


def test_a_full_disk_refuses_cleanly_and_recovers(tmp_path: Path, small_disk: Path) -> None:
    data = small_disk / "data"
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}")
    catalog.migrate()
    catalog.create_account("A", account_id="acct-a")
    ingest = {"Authorization": f"Bearer {catalog.create_key('acct-a', KeyScope.INGEST).secret}"}
    reports = {"Authorization": f"Bearer {catalog.create_key('acct-a', KeyScope.REPORTS).secret}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        with processes(tmp_path) as procs, httpx.Client(base_url=url, timeout=30) as http:
            command = [PYTHON, "-m", "mdr_reporting", "serve", "--port", str(port)]
            server = procs.start("serve", [*command, "--data-dir", str(data)])

            def up() -> bool:
                assert server.poll() is None, procs.log("serve")
                try:
                    return http.get("/health").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(up, 60, "the server to start")
            assert http.post("/ingest/mdrs", content=_batch(0), headers=ingest).status_code == 200
            rows, named, on_disk = _lake_files(data / "lake")
            assert rows == ROWS and named == on_disk

            filler = _fill(small_disk)
            refused = http.post("/ingest/mdrs", content=_batch(ROWS), headers=ingest)
            assert refused.status_code == 507, refused.text
            error = refused.json()["errors"][0]
            assert error["code"] == "insufficient_storage"
            assert "nothing of this batch was stored" in error["detail"]
            assert _lake_files(data / "lake") == (rows, named, on_disk), "nothing partial"

            body = {
                "start_time": BASE.replace(hour=0).isoformat(),
                "end_time": BASE.replace(hour=23).isoformat(),
            }
            created = http.post("/reporting/mdr_requests", json=body, headers=reports)
            assert created.status_code == 200, created.text
            request_id = created.json()["id"]

            def attempt_failed() -> bool:
                row = _row(catalog, request_id)
                return row.lease_owner is None and row.lease_expires_at is not None

            try:
                wait_for(attempt_failed, 30, "the build to fail its attempt on the full disk")
            except AssertionError:
                raise AssertionError(f"{_row(catalog, request_id)}\n{procs.log('serve')}") from None
            failed = _row(catalog, request_id)
            assert (failed.status, failed.attempts, failed.file_key) == (1, 0, None)
            assert "the disk is full" in procs.log("serve")
            leftovers = [p for p in data.rglob("*") if p.is_file() and p.parent.name != "lake"]
            assert not [p for p in leftovers if "reports" in p.parts or "work" in p.parts]
            view = http.get(f"/reporting/mdr_requests/{request_id}", headers=reports)
            assert view.status_code == 200 and view.json()["status"] == 1, "still serving"
            assert http.get("/reporting/mdr_requests", headers=reports).status_code == 200

            filler.unlink()  # space freed: the next attempt builds the report
            wait_for(lambda: _row(catalog, request_id).status == 2, 60, "the report to complete")
            done = http.get(f"/reporting/mdr_requests/{request_id}", headers=reports).json()
            report = httpx.get(done["report_url"], timeout=30)
            assert report.status_code == 200
            assert report.content.count(b"\r\n") == ROWS + 1  # the header and every row
            again = http.post("/ingest/mdrs", content=_batch(ROWS), headers=ingest)
            assert again.status_code == 200, again.text
            assert _lake_files(data / "lake")[0] == 2 * ROWS
    finally:
        catalog.close()
