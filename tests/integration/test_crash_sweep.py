"""Crash matrix (d): the sweeper killed with SIGKILL at random moments while it expires
reports, purges the files of deleted ones and removes orphans.

After every kill, each live request serves its whole file through its signed link and
each expired or deleted one serves nothing; after a restart no orphan file is left.
"""

from __future__ import annotations

import random
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.catalog.schema import requests
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.errors import Forbidden
from mdr_reporting.files import LinkSigner, LocalFileStore, SignedLink
from mdr_reporting.files.downloads import ReportDownloads
from mdr_reporting.worker import Sweeper
from mdr_reporting.worker.testing import make_request
from tests.integration.crash import PYTHON, ROOT, clean_env, kill9, seeded

KILLS = 10
PER_ROUND = 24  # a third live, a third due, a third deleted
LEASE = timedelta(seconds=30)

# A sweeper process as `mdr serve` runs it (small batches, so a kill lands inside one);
# it starts sweeping when told "go".
SWEEPER = """
import sys, time
from pathlib import Path
from datetime import timedelta
from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.files import LocalFileStore
from mdr_reporting.worker import Sweeper

queue = JobQueue(Catalog(sys.argv[1]), lease=timedelta(seconds=30), max_attempts=3,
                 retention=timedelta(days=30))
sweeper = Sweeper(queue, LocalFileStore(Path(sys.argv[2])), batch=3, orphan_grace=timedelta(0),
                  orphan_every=1)
print("ready", flush=True)
sys.stdin.readline()
while True:
    sweeper.sweep()
    time.sleep(0.005)
"""


class Reports:
    """Complete requests with real files, their expected bytes and signed links."""

    def __init__(self, catalog: Catalog, store: LocalFileStore, chance: random.Random) -> None:
        self.catalog = catalog
        self.store = store
        self.chance = chance
        self.queue = JobQueue(catalog, lease=LEASE, max_attempts=3, retention=timedelta(days=30))
        self.links = LinkSigner(
            "crash-test-secret-0123", "http://mdr.test", timedelta(days=1), _now
        )
        self.downloads = ReportDownloads(catalog, store, self.links)
        self.content: dict[str, bytes] = {}
        self.signed: dict[str, SignedLink] = {}
        self.live: set[str] = set()

    def add(self, tmp_path: Path, count: int) -> None:
        for n in range(count):
            state = make_request(self.catalog)
            claim = self.queue.claim("filler/0")
            assert claim is not None and claim.state.id == state.id
            body = f"report {state.id}\r\n".encode() * self.chance.randint(1, 200)
            source = tmp_path / "build.csv"
            source.write_bytes(body)
            key = f"{state.id}/{n:04d}.csv"
            size = self.store.put(key, source)
            assert self.queue.complete(
                state.id, "filler/0", file_key=key, record_count=1, size_bytes=size
            )
            self.content[state.id] = body
            self.signed[state.id] = self.links.sign(state.id, key)
            kind = n % 3
            if kind == 0:
                self.live.add(state.id)
            elif kind == 1:  # past its retention: due for the sweeper
                with self.catalog.transaction() as db:
                    db.execute(
                        requests.update()
                        .where(requests.c.id == state.id)
                        .values(expires_at=_now() - timedelta(seconds=1))
                    )
            else:
                assert self.catalog.delete_request(state.id) is not None

    def served(self, request_id: str) -> bytes | None:
        """What the request's link serves now: its bytes, or None when refused (403)."""
        link = self.signed[request_id]
        try:
            opened = self.downloads.open(request_id, str(link.expires), link.signature, link.file)
        except Forbidden:
            return None
        with opened.stream:
            return opened.stream.read()

    def check(self, when: str) -> None:
        statuses = self._statuses()
        for request_id, body in self.content.items():
            status, deleted = statuses[request_id]
            got = self.served(request_id)
            if request_id in self.live:
                assert status == RequestStatus.COMPLETE and got == body, f"{when}: {request_id}"
            elif deleted or status == RequestStatus.EXPIRED:
                assert got is None, f"{when}: {request_id} served after expiry or delete"
            else:  # due, not swept yet: whole, or refused; never a part
                assert status == RequestStatus.COMPLETE, when
                assert got in (body, None), f"{when}: {request_id} served a partial file"

    def _statuses(self) -> dict[str, tuple[int, bool]]:
        with self.catalog.engine.connect() as db:
            rows = db.execute(sa.select(requests.c.id, requests.c.status, requests.c.deleted_at))
            return {r.id: (r.status, r.deleted_at is not None) for r in rows}

    def owned_keys(self) -> set[str]:
        with self.catalog.engine.connect() as db:
            rows = db.execute(
                sa.select(requests.c.file_key).where(requests.c.file_key.is_not(None))
            )
            return {r.file_key for r in rows}


def _now() -> datetime:
    return datetime.now(UTC)


def _on_disk(store: LocalFileStore) -> set[str]:
    return {p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.migrate()
    return catalog


def test_kill_9_during_the_sweep_serves_nothing_expired_and_leaves_no_orphan(
    tmp_path: Path, catalog: Catalog
) -> None:
    chance = seeded("sweep crash")
    store = LocalFileStore(tmp_path / "reports")
    reports = Reports(catalog, store, chance)
    mid_way = 0
    try:
        for kill in range(KILLS):
            sweeper = subprocess.Popen(
                [PYTHON, "-c", SWEEPER, catalog.url, str(store.root)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=clean_env(),
                cwd=ROOT,
            )
            try:
                reports.add(tmp_path, PER_ROUND)
                assert sweeper.stdin is not None and sweeper.stdout is not None
                assert sweeper.stdout.readline() == b"ready\n"
                sweeper.stdin.write(b"go\n")
                sweeper.stdin.flush()
                time.sleep(chance.uniform(0.0, 0.12))  # about the time one pass takes here
                mid_way += kill9(sweeper)
            finally:
                if sweeper.poll() is None:
                    sweeper.kill()
                sweeper.wait()
                for pipe in (sweeper.stdin, sweeper.stdout):
                    if pipe is not None:
                        pipe.close()
            reports.check(f"after kill {kill}")
            left = _on_disk(store) - reports.owned_keys()
            print(f"kill {kill}: {len(left)} orphan file(s) left for the next sweep")

        result = Sweeper(reports.queue, store, orphan_grace=timedelta(0)).sweep()  # restart
        reports.check("after the restart")
        assert _on_disk(store) == reports.owned_keys(), "no orphan file is left"
        statuses = reports._statuses()
        assert {statuses[i][0] for i in reports.live} == {RequestStatus.COMPLETE}
        due = set(reports.content) - reports.live
        assert all(statuses[i][1] or statuses[i][0] == RequestStatus.EXPIRED for i in due)
        assert mid_way == KILLS
        print(f"restart sweep: {result}")
    finally:
        catalog.close()
