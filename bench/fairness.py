"""Fairness benchmark through a real server: one account's flood must not hold back another's.

    .venv/bin/python bench/fairness.py [--records 200000] [--flood 500] [--samples 5]

1. Generates ``--records`` MDRs of two accounts over 7 days and loads them with
   ``mdr ingest`` (cached in the work folder between runs).
2. Starts ``mdr serve`` (API + in-process worker, one build at a time) on a free port,
   with the create rate limit off so account A can flood.
3. Idle: account B's small report (one day of its own records), POST to the GET that
   sees status 2 (polled every 5 ms), ``--samples`` times: median.
4. Flood: account A POSTs ``--flood`` small reports from 8 threads (each as big as
   B's), then B's small report is timed again ``--samples`` times while A still has
   hundreds Pending (counted in the catalog at each of B's POSTs).
5. Prints both medians and their ratio (target <= 2x).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_api import wait_healthy

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.generator import account_ids, generate

START = date(2026, 10, 1)
DAYS = 7
MDR = [sys.executable, "-m", "mdr_reporting"]
V1 = "/reporting/mdr_requests"


def prepared(workdir: Path, records: int) -> tuple[Path, str, str]:
    """A data folder with ``records`` MDRs of two accounts, and a reports key of each."""
    data = workdir / f"data-{records}"
    keys = data / "bench.keys"
    if keys.exists():
        a, b = keys.read_text().split()
        return data, a, b
    data.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}")
    catalog.migrate()
    first, second = account_ids(2)
    for account in (first, second):
        catalog.create_account(account, account_id=account)
    key_a = catalog.create_key(first, KeyScope.REPORTS).secret
    key_b = catalog.create_key(second, KeyScope.REPORTS).secret
    catalog.close()
    source = workdir / f"mdrs-{records}.parquet"
    if not source.exists():
        pq.write_table(generate(records, 2, DAYS, START, seed=5), source)
    subprocess.run([*MDR, "ingest", str(source), "--data-dir", str(data)], check=True)
    keys.write_text(f"{key_a} {key_b}")
    return data, key_a, key_b


class Server:
    """``mdr serve`` on a free port, with the create rate limit off: A's flood is the point."""

    def __init__(self, data: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
        env |= {"MDR_LOG_LEVEL": "warning", "MDR_CREATE_RATE_LIMIT_RPS": "0"}
        self.log = (data / "bench-serve.log").open("w")
        self.process = subprocess.Popen(
            [*MDR, "serve", "--port", str(port), "--data-dir", str(data)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_healthy(self.url, self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def small_report(day: int) -> dict[str, Any]:
    """One day of the key's account (B's small report)."""
    first = START + timedelta(days=day % DAYS)
    return {
        "start_time": f"{first.isoformat()}T00:00:00Z",
        "end_time": f"{(first + timedelta(days=1)).isoformat()}T00:00:00Z",
    }


def flood_report(n: int) -> dict[str, Any]:
    """Half a day of A: A has about twice B's traffic, so A's reports are as small as B's."""
    first = datetime(START.year, START.month, START.day, tzinfo=UTC)
    first += timedelta(days=n % DAYS, hours=12 * (n // DAYS % 2))
    return {
        "start_time": first.isoformat(),
        "end_time": (first + timedelta(hours=12)).isoformat(),
    }


def timed(client: httpx.Client, body: dict[str, Any]) -> tuple[float, int, str]:
    started = time.perf_counter()
    created = client.post(V1, json=body)
    created.raise_for_status()
    request_id = created.json()["id"]
    while True:
        item = client.get(f"{V1}/{request_id}").json()
        if item["status"] != 1:
            break
        time.sleep(0.005)
    if item["status"] != 2:
        raise SystemExit(f"report failed: {item['error']}")
    return time.perf_counter() - started, int(item["record_count"]), request_id


def built_meanwhile(data: Path, request_id: str) -> int:
    """Builds of other accounts that completed while this request waited: at most the one
    that was running when it arrived, with fair claiming (hundreds with FIFO)."""
    with sqlite3.connect(f"file:{data / 'catalog.db'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT count(*) FROM requests o, requests r WHERE r.id = ? "
            "AND o.account_id <> r.account_id AND o.completed_at > r.created_at "
            "AND o.completed_at < r.completed_at",
            (request_id,),
        ).fetchone()
    return int(row[0])


def pending(data: Path, key: str) -> int:
    with sqlite3.connect(f"file:{data / 'catalog.db'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT count(*) FROM requests r JOIN api_keys k ON k.account_id = r.account_id "
            "WHERE k.key_hash = ? AND r.status = 1 AND r.deleted_at IS NULL",
            (hashlib.sha256(key.encode()).hexdigest(),),
        ).fetchone()
    return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--flood", type=int, default=500)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mdr-bench-fairness"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data, key_a, key_b = prepared(args.workdir, args.records)
    with sqlite3.connect(data / "catalog.db") as db:  # an idle service: no earlier run's queue
        db.execute("DELETE FROM requests")
        db.execute("DELETE FROM claim_turns")
    server = Server(data)

    def client(key: str) -> httpx.Client:
        return httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )

    try:
        with client(key_a) as a, client(key_b) as b:
            timed(b, small_report(0))  # warm up
            idle = [timed(b, small_report(n))[0] for n in range(args.samples)]
            rows = timed(b, small_report(0))[1]
            a_idle = [timed(a, flood_report(n)) for n in range(args.samples)]
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda n: a.post(V1, json=flood_report(n)).raise_for_status(),
                        range(args.flood),
                    )
                )
            flooded, queued, ahead = [], [], []
            for n in range(args.samples):
                queued.append(pending(data, key_a))
                took, _rows, request_id = timed(b, small_report(n))
                flooded.append(took)
                ahead.append(built_meanwhile(data, request_id))
            left = pending(data, key_a)
    finally:
        server.stop()
    idle_ms = statistics.median(idle) * 1000
    flood_ms = statistics.median(flooded) * 1000
    print(f"account B's small report ({rows} rows), POST to Complete, median of {args.samples}:")
    a_ms = statistics.median(t for t, _, _ in a_idle) * 1000
    a_rows = sorted(r for _, r, _ in a_idle)
    print(f"account A's flood reports ({a_rows[0]}-{a_rows[-1]} rows), idle: {a_ms:.0f} ms")
    print(f"  idle service:            {idle_ms:7.0f} ms  (samples {_ms(idle)})")
    print(
        f"  A has {min(queued)}-{max(queued)} Pending: {flood_ms:7.0f} ms  (samples {_ms(flooded)})"
    )
    print(
        f"  ratio flood / idle: {flood_ms / idle_ms:.2f}x (target <= 2x); "
        f"A still had {left} Pending at the end"
    )
    print(f"  A's builds completed while each of B's waited: {ahead} (fair: <= 1 each)")


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


if __name__ == "__main__":
    main()
