"""Report benchmark through the real HTTP API: POST-to-Complete times and the server's peak RSS.

    .venv/bin/python bench/report_api.py [--records 3300000] [--small 50] [--big 0]

1. Generates ``--records`` MDRs (20 accounts under one parent, 30 days) and loads
   them with ``mdr ingest`` (cached in the work folder between runs).
2. Starts ``mdr serve`` (API + in-process worker) on a free port.
3. Times, from the POST to the GET that sees status 2 (polled every 5 ms):
   - the biggest account's 30-day report, all directions and record types
     (about 1M rows with the default size);
   - ``--small`` reports of a small account's single day (<= 1k rows each): median.
4. Reads the server's peak RSS (VmHWM) after those builds.
5. With ``--big N``: a second lake of N records and one report over all 20
   accounts (every row), then the server's peak RSS while building it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.generator import account_ids, generate

START = date(2026, 10, 1)
DAYS = 30
ACCOUNTS = 20
MDR = [sys.executable, "-m", "mdr_reporting"]
V1 = "/reporting/mdr_requests"


def prepared(workdir: Path, records: int) -> tuple[Path, str]:
    """A data folder holding ``records`` generated MDRs, and a reports key of the parent."""
    data = workdir / f"data-{records}"
    key_file = data / "bench.key"
    if key_file.exists():
        return data, key_file.read_text()
    data.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}")
    catalog.migrate()
    catalog.create_account("Bench parent", account_id="bench")
    for account in account_ids(ACCOUNTS):
        catalog.create_account(account, account_id=account, parent_id="bench")
    key = catalog.create_key("bench", KeyScope.REPORTS).secret
    catalog.close()
    source = workdir / f"mdrs-{records}.parquet"
    if not source.exists():
        started = time.perf_counter()
        pq.write_table(generate(records, ACCOUNTS, DAYS, START, seed=3), source)
        print(f"  generated {records:,} records in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    subprocess.run([*MDR, "ingest", str(source), "--data-dir", str(data)], check=True)
    print(f"  ingested in {time.perf_counter() - started:.1f} s")
    key_file.write_text(key)
    return data, key


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
        self.log = (data / "bench-serve.log").open("w")
        self.process = subprocess.Popen(
            [*MDR, "serve", "--port", str(self.port), "--data-dir", str(data)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**env, "MDR_LOG_LEVEL": "warning"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("the server did not start")

    def peak_rss_mib(self) -> float:
        """The largest VmHWM of the server's processes (the API and its report worker)."""
        pids = [self.process.pid]
        pids += [
            int(child)
            for task in Path(f"/proc/{self.process.pid}/task").glob("*/children")
            for child in task.read_text().split()
        ]
        peaks = []
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
            peaks.append(int(line.split()[1]) / 1024)
        return max(peaks)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def timed_report(client: httpx.Client, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    created = client.post(V1, json=body)
    created.raise_for_status()
    request_id = created.json()["id"]
    while True:
        item: dict[str, Any] = client.get(f"{V1}/{request_id}").json()
        if item["status"] != 1:
            break
        time.sleep(0.005)
    took = time.perf_counter() - started
    if item["status"] != 2:
        raise SystemExit(f"report failed: {item['error']}")
    return took, item


def window(first: date, days: int) -> dict[str, str]:
    return {
        "start_time": f"{first.isoformat()}T00:00:00Z",
        "end_time": f"{(first + timedelta(days=days)).isoformat()}T00:00:00Z",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3_300_000)
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--big", type=int, default=0, help="records for the peak-RSS report")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mdr-bench-api"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    data, key = prepared(args.workdir, args.records)
    server = Server(data)
    accounts = account_ids(ACCOUNTS)
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600
        ) as client:
            big = {
                **window(START, DAYS),
                "managed_accounts": [accounts[0]],
                "directions": [],
                "record_types": [1, 2, 3],
            }
            timed_report(client, {**big, **window(START, 1)})  # warm the page cache
            took, item = timed_report(client, big)
            print(
                f"1. biggest account, 30 days: {item['record_count']:,} rows, "
                f"{item['size_bytes'] / 1e6:,.0f} MB, POST to Complete {took:.2f} s "
                f"({item['record_count'] / took:,.0f} rows/s)"
            )
            small_times, small_rows = [], []
            for n in range(args.small):
                day = START + timedelta(days=n % DAYS)
                body = {**window(day, 1), "managed_accounts": [accounts[-1]]}
                took, item = timed_report(client, body)
                small_times.append(took)
                small_rows.append(item["record_count"])
            print(
                f"2. {args.small} small reports ({min(small_rows)}-{max(small_rows)} rows): "
                f"median POST to Complete {statistics.median(small_times) * 1000:.0f} ms, "
                f"p90 {statistics.quantiles(small_times, n=10)[-1] * 1000:.0f} ms"
            )
            print(f"3. server peak RSS so far: {server.peak_rss_mib():,.0f} MiB")
    finally:
        server.stop()

    if args.big:
        data, key = prepared(args.workdir, args.big)
        server = Server(data)
        try:
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=3600
            ) as client:
                body = {
                    **window(START, DAYS),
                    "select_all_managed_accounts": True,
                    "record_types": [1, 2, 3],
                }
                took, item = timed_report(client, body)
                print(
                    f"4. every account, 30 days: {item['record_count']:,} rows, "
                    f"{item['size_bytes'] / 1e9:,.1f} GB in {took:.1f} s "
                    f"({item['record_count'] / took:,.0f} rows/s); "
                    f"server peak RSS {server.peak_rss_mib():,.0f} MiB"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
