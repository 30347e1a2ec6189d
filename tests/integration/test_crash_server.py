"""Crash matrix (a): `mdr serve` killed with SIGKILL while clients ingest.

Every batch the server acknowledged (2xx) is in the lake whole after the restart;
no batch is there in part. Batches span two UTC days, so each append writes
several files: the case where a half-committed batch could show.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.lake.manifest import read_manifest
from tests.acceptance.helpers import free_port
from tests.integration.crash import Processes, go, kill9, processes, seeded, wait_for

KILLS = 10
CLIENTS = 3
BATCH = 120
START = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)


def _batch(name: str) -> bytes:
    rows = []
    for i in range(BATCH):
        created = START + timedelta(minutes=i * 3)  # 22:00 to 04:00 next day: two days
        rows.append(
            {
                "id": f"{name}-{i:03d}",
                "account_id": "acct-a",
                "created_at": created.isoformat(),
                "direction": "outbound",
                "cli": "+13125550100",
                "cld": "+447700900123",
                "status": "delivered",
                "message_body": "x" * (i % 50),
            }
        )
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


class Clients:
    """Threads that post fresh batches until stopped, noting which were acknowledged."""

    def __init__(self, url: str, key: str, round_number: int) -> None:
        self.url = url
        self.key = key
        self.round = round_number
        self.stop = threading.Event()
        self.first_ack = threading.Event()
        self.acked: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(CLIENTS)]

    def _run(self, client: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/x-ndjson"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as http:
            number = 0
            while not self.stop.is_set():
                name = f"r{self.round:02d}c{client}b{number:04d}"
                number += 1
                try:
                    answer = http.post("/ingest/mdrs", content=_batch(name))
                except httpx.HTTPError:
                    continue  # the server died: this batch may or may not be stored
                with self.lock:
                    self.statuses[answer.status_code] += 1
                    if answer.is_success:
                        assert answer.json() == {"accepted": BATCH}
                        self.acked.append(name)
                        self.first_ack.set()

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


SERVE_IMPORTS = ["mdr_reporting.cli.main", "mdr_reporting.cli.serve", "mdr_reporting.api"]


def _spawn(procs: Processes, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`mdr serve` on a free port, its imports done; it starts serving on :func:`go`."""
    port = free_port()
    server = procs.start_ready(
        "serve",
        "mdr_reporting",
        SERVE_IMPORTS,
        *("serve", "--port", str(port), "--data-dir", str(data), "--without-worker"),
        MDR_LOG_LEVEL="warning",
    )
    return server, f"http://127.0.0.1:{port}"


def _serve(procs: Processes, server: subprocess.Popen[bytes], url: str) -> None:
    go(server)

    def up() -> bool:
        assert server.poll() is None, procs.log("serve")
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, "the server to start")


def _stored_batches(data: Path) -> Counter[str]:
    """Rows per batch in the lake as a fresh reader sees it (every named file must exist)."""
    lake = data / "lake"
    counts: Counter[str] = Counter()
    for entries in read_manifest(lake).days.values():
        for entry in entries:
            ids = pq.read_table(lake / entry.path, columns=["id"]).column("id").to_pylist()
            assert len(ids) == entry.rows
            counts.update(i.rsplit("-", 1)[0] for i in ids)
    return counts


def test_acknowledged_batches_survive_kill_9_of_the_server_whole(tmp_path: Path) -> None:
    chance = seeded("server crash")
    data = tmp_path / "data"
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}")
    catalog.migrate()
    catalog.create_account("A", account_id="acct-a")
    key = catalog.create_key("acct-a", KeyScope.INGEST).secret
    catalog.close()

    acked: list[str] = []
    statuses: Counter[int] = Counter()
    kills_in_flight = 0
    with processes(tmp_path) as procs:
        following = _spawn(procs, data)
        for round_number in range(KILLS):
            server, url = following
            _serve(procs, server, url)
            following = _spawn(procs, data)  # imports while this one serves
            with Clients(url, key, round_number) as clients:
                assert clients.first_ack.wait(60), f"no batch acknowledged: {procs.log('serve')}"
                time.sleep(chance.uniform(0.0, 1.0))  # batches in flight all the time
                assert kill9(server), procs.log("serve")
            acked += clients.acked
            statuses += clients.statuses
            kills_in_flight += 1
            stored = _stored_batches(data)
            partial = {name: rows for name, rows in stored.items() if rows != BATCH}
            assert not partial, f"batches stored in part after kill {round_number}: {partial}"
            missing = [name for name in clients.acked if name not in stored]
            assert not missing, f"acknowledged batches lost after kill {round_number}: {missing}"

        # Restart: the server serves again and the lake takes a new batch after the kills.
        server, url = following
        _serve(procs, server, url)
        answer = httpx.post(
            f"{url}/ingest/mdrs",
            content=_batch("after"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    stored = _stored_batches(data)
    assert set(stored.values()) == {BATCH}
    assert set(acked) | {"after"} <= set(stored)
    assert all(code < 500 for code in statuses), statuses  # never a 5xx while it was up
    assert len(acked) >= KILLS, f"too little traffic to mean anything: {statuses}"
    print(f"{len(acked)} batches acknowledged, {len(stored)} stored, {kills_in_flight} kills")
