"""Report benchmark through the real HTTP API: POST-to-Complete times, peak RSS, baselines.

    .venv/bin/python bench/report_api.py                      # parts A and C
    .venv/bin/python bench/report_api.py --big 20000000       # and part B (cost against size)
    .venv/bin/python bench/report_api.py --big 20000000 --postgres --chart bench/report_api.png

The real ``mdr serve`` (API + in-process worker, SQLite catalog, local lake and files)
on a free port; times run from the POST to the GET that sees status 2 (polled every
5 ms).  Each data set is generated once (``mdr generate``'s code, 20 accounts under one
parent, 30 days) and loaded with ``mdr ingest`` into ``--workdir``, then reused.

A. ``--records`` MDRs (default 3.3M: the biggest account holds about 1M rows over 30 days):
   - the biggest account's 30-day report, all types: median of 3 builds (three zone names
     with offset 0, so that none is a repeat of another), and beside it, in the same run,
     one raw DuckDB ``COPY`` of the same rows and (``--postgres``) PostgreSQL ``COPY``;
   - the same request again: completed from the first one's file (worker/reuse.py);
   - ``--small`` one-day reports of a small account: median;
   - the server's peak RSS (VmHWM).
B. ``--big N`` MDRs: reports over every account with windows from minutes to 30 days
   (about 1k to N rows): POST to Complete and the server's peak RSS for each (VmHWM reset
   before each through ``/proc/<pid>/clear_refs``), the PostgreSQL COPY of the same rows
   where it completes within ``--pg-timeout``; the 30-day one is the full export, whose
   rate is compared with part A's one-account rate.
C. Ingest rate against batch size: NDJSON batches of 100 to 50,000 records posted one
   after another by one client to a fresh server (every batch durable before its 200).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report as report_bench

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.query import ReportQuery, compile_query
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.generator import account_ids, generate
from mdr_reporting.lake import Snapshot, open_lake

START = date(2026, 10, 1)
DAYS = 30
ACCOUNTS = 20
CHUNK = 5_000_000  # records generated (and held in memory) at a time
MDR = [sys.executable, "-m", "mdr_reporting"]
V1 = "/reporting/mdr_requests"
UTC_NAMES = ("UTC", "Etc/UTC", "Etc/Universal")  # offset 0 everywhere: the same rows and sizes
BATCHES = (100, 1_000, 10_000, 50_000)


def prepared(workdir: Path, records: int) -> tuple[Path, str, str]:
    """A data folder holding ``records`` generated MDRs, a reports key and an ingest key."""
    data = workdir / f"data-{records}"
    keys = data / "bench-keys.json"
    if keys.exists():
        found = json.loads(keys.read_text())
        return data, found["reports"], found["ingest"]
    data.mkdir(parents=True, exist_ok=True)
    reports, ingest = _accounts(data)
    sources = []
    for part, offset in enumerate(range(0, records, CHUNK)):
        source = workdir / f"mdrs-{records}-{part}.parquet"
        if not source.exists():
            started = time.perf_counter()
            count = min(CHUNK, records - offset)
            pq.write_table(generate(count, ACCOUNTS, DAYS, START, seed=3 + part), source)
            print(f"  generated {count:,} records in {time.perf_counter() - started:.1f} s")
        sources.append(str(source))
    started = time.perf_counter()
    subprocess.run([*MDR, "ingest", *sources, "--data-dir", str(data)], check=True)
    print(f"  ingested {records:,} records in {time.perf_counter() - started:.1f} s")
    keys.write_text(json.dumps({"reports": reports, "ingest": ingest}))
    return data, reports, ingest


def _accounts(data: Path) -> tuple[str, str]:
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}")
    catalog.migrate()
    catalog.create_account("Bench parent", account_id="bench")
    for account in account_ids(ACCOUNTS):
        catalog.create_account(account, account_id=account, parent_id="bench")
    reports = catalog.create_key("bench", KeyScope.REPORTS).secret
    ingest = catalog.create_key("bench", KeyScope.INGEST).secret
    catalog.close()
    return reports, ingest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(
    url: str, process: subprocess.Popen[Any], log: Path | None = None, seconds: float = 60
) -> None:
    """Until ``url``/health answers 200; SystemExit (naming the server's ``log``) when the
    server exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("the server did not start" + (f"; see {log}" if log else ""))


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
            env={**env, "MDR_LOG_LEVEL": "warning", "MDR_CREATE_RATE_LIMIT_RPS": "0"},
        )
        wait_healthy(self.url, self.process)

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

    def reset_peak(self) -> None:
        """Start the high-water mark again from the current RSS (Linux clear_refs, 5)."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

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


def forget_reports(client: httpx.Client) -> None:
    """DELETE every request of the key's accounts, so that no build below is a repeat of an
    earlier run's report (those are completed from a copy, worker/reuse.py)."""
    while True:
        page = client.get(V1, params={"per_page": 100}).json()
        items = page if isinstance(page, list) else page["data"]
        if not items:
            return
        for item in items:
            client.delete(f"{V1}/{item['id']}")


def window(first: datetime, length: timedelta) -> dict[str, str]:
    return {
        "start_time": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": (first + length).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def query_of(body: dict[str, Any], accounts: list[str]) -> ReportQuery:
    """The compiled query of an API body (for the baselines over the same rows)."""
    start = datetime.fromisoformat(body["start_time"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(body["end_time"].replace("Z", "+00:00"))
    request = ReportRequest(
        start_time=start,
        end_time=end,
        timezone="UTC",
        directions=tuple(Direction),
        record_types=tuple(RecordType),
    )
    return compile_query(request, accounts)


def lake_snapshot(data: Path) -> Snapshot:
    lake = open_lake((data / "lake").resolve().as_uri())
    snapshot = lake.snapshot()
    lake.release(snapshot)  # nothing compacts this lake while the benchmark reads it
    return snapshot


def best_of(run: Callable[[], int], repeat: int) -> tuple[int, float]:
    best = (0, float("inf"))
    for _ in range(repeat):
        began = time.perf_counter()
        rows = run()
        elapsed = time.perf_counter() - began
        if elapsed < best[1]:
            best = (rows, elapsed)
    return best


def postgres_timed(query: ReportQuery, out: Path, table: str, timeout: float) -> float | None:
    """PostgreSQL COPY of the query's rows; None when it does not finish within ``timeout``."""
    import psycopg

    run = report_bench.postgres_run(query, out, table=table, timeout=timeout)
    try:
        return best_of(run, 1)[1]
    except psycopg.errors.QueryCanceled:
        return None


def part_a(args: argparse.Namespace, out: dict[str, Any]) -> None:
    data, key, _ = prepared(args.workdir, args.records)
    accounts = account_ids(ACCOUNTS)
    snapshot = lake_snapshot(data)
    server = Server(data)
    first = datetime.combine(START, datetime.min.time(), UTC)
    big = {
        **window(first, timedelta(days=DAYS)),
        "managed_accounts": [accounts[0]],
        "directions": [],
        "record_types": [1, 2, 3],
    }
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600
        ) as client:
            forget_reports(client)
            timed_report(client, {**big, **window(first, timedelta(days=1))})  # page cache
            builds = []
            for zone in UTC_NAMES:
                took, item = timed_report(client, {**big, "timezone": zone})
                builds.append(took)
            rows = item["record_count"]
            build = statistics.median(builds)
            repeats = [timed_report(client, {**big, "timezone": UTC_NAMES[0]})[0] for _ in range(5)]
            repeat = statistics.median(repeats)
            small_times, small_rows = [], []
            for n in range(args.small):
                day = first + timedelta(days=n % DAYS)
                body = {**window(day, timedelta(days=1)), "managed_accounts": [accounts[-1]]}
                took, item_small = timed_report(client, {**body, "report_name": f"small {n}"})
                small_times.append(took)
                small_rows.append(item_small["record_count"])
            peak = server.peak_rss_mib()
    finally:
        server.stop()
    print(
        f"A1. biggest account, 30 days: {rows:,} rows ({item['size_bytes'] / 1e6:,.0f} MB): "
        f"POST to Complete median {build:.2f} s of {', '.join(f'{t:.2f}' for t in builds)} "
        f"({rows / build:,.0f} rows/s)"
    )
    query = query_of(big, [accounts[0]])
    raw_rows, raw = best_of(
        report_bench.raw_duckdb_run(query, snapshot, args.workdir / "raw.csv"), 3
    )
    pg = None
    if args.postgres:
        report_bench.ensure_postgres(snapshot, args.pg_table)
        pg = postgres_timed(query, args.workdir / "pg.csv", args.pg_table, args.pg_timeout)
    print(
        f"    same run, same rows: raw DuckDB COPY {raw:.2f} s ({raw_rows:,} rows, no "
        f"latest-version pass, UTC text): raw/API {raw / build:.2f}"
        + (f"; PostgreSQL COPY {pg:.2f} s: PG/API {pg / build:.2f}" if pg else "")
    )
    print(
        f"A2. the same report again (completed from the first one's file): median "
        f"{repeat * 1000:.0f} ms of 5 (first build {build:.2f} s)"
    )
    print(
        f"A3. {args.small} small reports ({min(small_rows)}-{max(small_rows)} rows): median "
        f"{statistics.median(small_times) * 1000:.0f} ms, "
        f"p90 {statistics.quantiles(small_times, n=10)[-1] * 1000:.0f} ms"
    )
    print(f"A4. server peak RSS after part A: {peak:,.0f} MiB")
    out["a"] = {
        "rows": rows,
        "build_s": build,
        "builds_s": builds,
        "raw_s": raw,
        "pg_s": pg,
        "repeat_s": repeat,
        "small_median_s": statistics.median(small_times),
        "peak_mib": peak,
    }


def part_b(args: argparse.Namespace, out: dict[str, Any]) -> None:
    data, key, _ = prepared(args.workdir, args.big)
    snapshot = lake_snapshot(data)
    if args.postgres:
        report_bench.ensure_postgres(snapshot, args.pg_table + "_big")
    accounts = account_ids(ACCOUNTS)
    per_day = args.big / DAYS
    first = datetime.combine(START + timedelta(days=10), datetime.min.time(), UTC)
    sizes = [1_000, 10_000, 100_000, 1_000_000, 5_000_000]
    lengths = [timedelta(seconds=round(n / per_day * 86400)) for n in sizes if n < args.big]
    points: list[dict[str, Any]] = []
    server = Server(data)
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=7200
        ) as client:
            forget_reports(client)
            for length in [*lengths, None]:
                start = first if length is not None else first - timedelta(days=10)
                span = length if length is not None else timedelta(days=DAYS)
                body = {
                    **window(start, span),
                    "select_all_managed_accounts": True,
                    "record_types": [1, 2, 3],
                }
                server.reset_peak()
                took, item = timed_report(client, body)
                peak = server.peak_rss_mib()
                pg = None
                if args.postgres:
                    query = query_of(body, accounts)
                    pg = postgres_timed(
                        query, args.workdir / "pg.csv", args.pg_table + "_big", args.pg_timeout
                    )
                rows = item["record_count"]
                points.append({"rows": rows, "api_s": took, "peak_mib": peak, "pg_s": pg})
                pg_text = f"{pg:.2f} s" if pg is not None else "n/a"
                print(
                    f"B. every account, {span}: {rows:,} rows, POST to Complete {took:.2f} s "
                    f"({rows / took:,.0f} rows/s), peak RSS {peak:,.0f} MiB; "
                    f"PostgreSQL COPY {pg_text}"
                )
    finally:
        server.stop()
    export = points[-1]
    rate = export["rows"] / export["api_s"]
    one_account = out.get("a", {})
    base = one_account.get("rows", 0) / one_account["build_s"] if one_account else None
    print(
        f"B-export: {export['rows']:,} rows at {rate:,.0f} rows/s, peak RSS "
        f"{export['peak_mib']:,.0f} MiB"
        + (f"; one-account rate in this run {base:,.0f} rows/s: {rate / base:.2f}x" if base else "")
    )
    out["b"] = points


def part_c(args: argparse.Namespace, out: dict[str, Any]) -> None:
    data = args.workdir / "ingest"
    if data.exists():
        subprocess.run(["rm", "-rf", str(data)], check=True)
    data.mkdir(parents=True)
    _, ingest_key = _accounts(data)
    records = generate(args.ingest_rows, ACCOUNTS, DAYS, START, seed=11)
    lines = [json.dumps(row, default=str).encode() for row in _json_rows(records)]
    server = Server(data)
    rates = []
    try:
        with httpx.Client(
            base_url=server.url,
            headers={
                "Authorization": f"Bearer {ingest_key}",
                "Content-Type": "application/x-ndjson",
            },
            timeout=600,
        ) as client:
            offset = 0
            for size in BATCHES:
                count = max(size, min(len(lines) // len(BATCHES), size * 50))
                chunk = [lines[(offset + i) % len(lines)] for i in range(count)]
                offset += count
                began = time.perf_counter()
                for at in range(0, count, size):
                    body = b"\n".join(chunk[at : at + size]) + b"\n"
                    client.post("/ingest/mdrs", content=body).raise_for_status()
                took = time.perf_counter() - began
                rates.append({"batch": size, "rows": count, "rows_per_s": count / took})
                print(
                    f"C. ingest, {size:,}-record batches: {count:,} records, "
                    f"{count / took:,.0f} rows/s"
                )
    finally:
        server.stop()
    out["c"] = rates


def _json_rows(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    for row in rows:
        for name, value in row.items():
            if isinstance(value, datetime):
                row[name] = value.isoformat()
            elif value is not None and name in ("rate", "cost"):
                row[name] = str(value)
    return rows


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results.get("b", [])
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.5))
    rows = [p["rows"] for p in points]
    left.loglog(rows, [p["api_s"] for p in points], "o-", label="mdr: POST to Complete")
    pg = [(p["rows"], p["pg_s"]) for p in points if p["pg_s"] is not None]
    if pg:
        left.loglog(*zip(*pg, strict=True), "s--", label="PostgreSQL COPY (same rows)")
    left.set_xlabel("report rows")
    left.set_ylabel("seconds")
    left.set_title("Time against report size")
    left.legend()
    left.grid(True, which="both", alpha=0.3)
    middle.semilogx(rows, [p["peak_mib"] for p in points], "o-")
    middle.axhline(1024, color="grey", linestyle=":", label="1 GiB")
    middle.set_xlabel("report rows")
    middle.set_ylabel("server peak RSS, MiB")
    middle.set_title("Peak RSS against report size")
    middle.legend()
    middle.grid(True, which="both", alpha=0.3)
    ingest = results.get("c", [])
    right.semilogx([r["batch"] for r in ingest], [r["rows_per_s"] for r in ingest], "o-")
    right.set_xlabel("records per NDJSON batch")
    right.set_ylabel("rows/s, one client")
    right.set_title("HTTP ingest rate against batch size")
    right.grid(True, which="both", alpha=0.3)
    figure.suptitle(results.get("title", "bench/report_api.py"))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"chart written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3_300_000)
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--big", type=int, default=0, help="records for part B (0: skip)")
    parser.add_argument("--ingest-rows", type=int, default=200_000, help="0: skip part C")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL COPY baselines")
    parser.add_argument("--pg-table", default="bench_mdr_api")
    parser.add_argument("--pg-timeout", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mdr-bench-api"))
    parser.add_argument("--chart", type=Path, default=None, help="write the PNG chart here")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--parts", default="abc")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    results: dict[str, Any] = {
        "title": f"bench/report_api.py, {date.today()}, load average {load:.1f} at start"
    }
    print(results["title"])
    if "a" in args.parts:
        part_a(args, results)
    if "b" in args.parts and args.big:
        part_b(args, results)
    if "c" in args.parts and args.ingest_rows:
        part_c(args, results)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.chart and "b" in results:
        chart(results, args.chart)


if __name__ == "__main__":
    main()
