"""Ingest benchmark: file import (Parquet, NDJSON) and HTTP batches against a real server.

    .venv/bin/python bench/ingest.py [--records 10000000] [--http-rows 1000000]

Prints rows/s for each path and the median latency of a 1,000-row HTTP batch.
Generated files are cached in the work folder (default /tmp/mdr-bench) by size.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.generator import account_ids, generate, write_records
from mdr_reporting.ingest import Ingestor, read_file
from mdr_reporting.lake import open_lake

START = date(2026, 10, 1)
DAYS = 30
ACCOUNTS = 20
SERVE = [sys.executable, "-m", "mdr_reporting", "serve"]


def generated(workdir: Path, records: int, suffix: str, seed: int = 1) -> Path:
    path = workdir / f"mdrs-{records}-{seed}{suffix}"
    if not path.exists():
        started = time.perf_counter()
        write_records(generate(records, ACCOUNTS, DAYS, START, seed), path)
        took = time.perf_counter() - started
        print(f"  generated {path.name} in {took:.1f} s ({records / took:,.0f} rows/s)")
    return path


def fresh_data_dir(workdir: Path, name: str) -> Path:
    data = workdir / name
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}")
    catalog.migrate()
    platform, *customers = account_ids(ACCOUNTS)
    catalog.create_account(platform, account_id=platform)
    for account in customers:  # the platform's key may write every customer's records
        catalog.create_account(account, account_id=account, parent_id=platform)
    catalog.close()
    return data


def file_import(workdir: Path, path: Path) -> float:
    data = fresh_data_dir(workdir, "data-file")
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}")
    ingestor = Ingestor(open_lake((data / "lake").as_uri()), catalog)
    started = time.perf_counter()
    result = ingestor.ingest(read_file(path))
    took = time.perf_counter() - started
    catalog.close()
    rate = result.rows / took
    print(f"file import {path.name}: {result.rows:,} rows in {took:.1f} s = {rate:,.0f} rows/s")
    return rate


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_batches(workdir: Path, rows: int) -> tuple[float, float]:
    data = fresh_data_dir(workdir, "data-http")
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}")
    key = catalog.create_key(account_ids(1)[0], KeyScope.INGEST).secret
    catalog.close()
    source = generated(workdir, rows + 100_000, ".ndjson", seed=2)
    lines = source.read_bytes().splitlines(keepends=True)
    port = free_port()
    server = subprocess.Popen(
        [*SERVE, "--port", str(port), "--data-dir", str(data), "--without-worker"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("MDR_")},
    )
    url = f"http://127.0.0.1:{port}/ingest/mdrs"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    try:
        with httpx.Client(timeout=120) as client:
            for _ in range(200):
                try:
                    client.get(f"http://127.0.0.1:{port}/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            batches = [b"".join(lines[i : i + 10_000]) for i in range(0, rows, 10_000)]
            started = time.perf_counter()
            sent = 0
            for body in batches:
                response = client.post(url, content=body, headers=headers)
                response.raise_for_status()
                sent += response.json()["accepted"]
            took = time.perf_counter() - started
            rate = sent / took
            print(f"HTTP 10k-row batches: {sent:,} rows in {took:.1f} s = {rate:,.0f} rows/s")

            latencies = []
            tail = lines[rows : rows + 100_000]
            for i in range(0, 100 * 1000, 1000):
                body = b"".join(tail[i : i + 1000])
                started = time.perf_counter()
                response = client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
            median = statistics.median(latencies) * 1000
            p90 = statistics.quantiles(latencies, n=10)[-1] * 1000
            print(f"HTTP 1k-row batch: median {median:.1f} ms, p90 {p90:.1f} ms (100 batches)")
            gz = gzip.compress(b"".join(tail[:1000]))
            response = client.post(url, content=gz, headers={**headers, "Content-Encoding": "gzip"})
            response.raise_for_status()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rate, median


def delta_baseline(workdir: Path, parquet: Path, rows: int = 1_000_000) -> tuple[float, float]:
    """The issue's named baseline: a plain Delta Lake append (deltalake) of the same rows,
    1M rows at once (rows/s) and 1k-row appends (median ms), with no validation or layout."""
    try:
        from deltalake import write_deltalake
    except ImportError:
        raise SystemExit(
            "the baseline needs deltalake: .venv/bin/pip install -e '.[bench]'"
        ) from None
    import pyarrow.parquet as pq

    table = pq.read_table(parquet).slice(0, rows + 100_000)
    target = workdir / "delta-baseline"
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    write_deltalake(str(target), table.slice(0, rows), mode="append")
    rate = rows / (time.perf_counter() - started)
    latencies = []
    for i in range(100):
        piece = table.slice(rows + i * 1000, 1000)
        started = time.perf_counter()
        write_deltalake(str(target), piece, mode="append")
        latencies.append(time.perf_counter() - started)
    median = statistics.median(latencies) * 1000
    print(
        f"baseline: plain Delta append of {rows:,} rows = {rate:,.0f} rows/s; "
        f"1k-row append median {median:.1f} ms"
    )
    return rate, median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--http-rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mdr-bench"))
    parser.add_argument("--skip-ndjson", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs; records {args.records:,}")
    parquet = generated(args.workdir, args.records, ".parquet")
    delta_rate, delta_median = delta_baseline(args.workdir, parquet)
    parquet_rate = file_import(args.workdir, parquet)
    if not args.skip_ndjson:
        file_import(args.workdir, generated(args.workdir, args.records, ".ndjson"))
    http_rate, http_median = http_batches(args.workdir, args.http_rows)
    print(
        f"ratios to the Delta baseline: Parquet import {parquet_rate / delta_rate:.2f}x its "
        f"rows/s, HTTP 10k batches {http_rate / delta_rate:.2f}x, 1k-row HTTP batch "
        f"{http_median / delta_median:.2f}x its latency"
    )


if __name__ == "__main__":
    main()
