"""Search and usage benchmark: the telnyx SDK against a real `mdr serve` over the demo data.

Loads the demo records (as `mdr demo` does: 1,000,000 records, 20 accounts, the last
30 days) into a data folder, starts `mdr serve` on it, and times with the official
SDK (only ``base_url`` set), for the biggest account:

- ``detail_records.list`` first page of 20 over the last 30 days, newest first
  (target: median <= 100 ms), printed; and a filtered search (failed, to +44);
- ``reports.mdr_usage_reports.fetch_sync`` over 30 days, per aggregation
  (target: median <= 500 ms).

Each figure is the median (and p95) of ``--runs`` calls after one warm-up call.

    .venv/bin/python bench/search.py                       # 1,000,000 demo records
    .venv/bin/python bench/search.py --records 200000 --runs 10
    .venv/bin/python bench/search.py --data-dir /tmp/mdr-bench   # keeps and reuses the data
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import telnyx

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.cli.records import load_demo_records
from mdr_reporting.settings import load_settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _timed(call: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """Median and p95 in milliseconds over ``runs`` calls after a warm-up; the last answer."""
    answer = call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * len(times)) - 1)], answer


def _biggest_account(lake_dir: Path) -> tuple[str, int]:
    files = [str(p) for p in lake_dir.rglob("*.parquet")]
    row = duckdb.execute(
        "SELECT account_id, count(*) FROM read_parquet($f, hive_partitioning = false) "
        "GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
        {"f": files},
    ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()

    temporary = None
    if args.data_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="mdr-bench-search-")
        args.data_dir = Path(temporary.name)
    data_dir = args.data_dir.resolve()
    settings = load_settings({"data_dir": str(data_dir), "log_level": "warning"}, environ={})
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    loaded = load_demo_records(settings, catalog, args.records)
    account, rows = _biggest_account(data_dir / "lake")
    key = catalog.create_key(account, KeyScope.REPORTS).secret
    catalog.close()
    print(f"demo data: {loaded or 'already loaded'} records; biggest account {account}: {rows:,}")

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    command = [sys.executable, "-m", "mdr_reporting", "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--data-dir", str(data_dir), "--without-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("mdr serve did not start")
            time.sleep(0.1)
        client = telnyx.Telnyx(api_key=key, base_url=f"{url}/v2", max_retries=0)
        _run(client, args.runs)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if temporary is not None:
            temporary.cleanup()


def _run(client: telnyx.Telnyx, runs: int) -> None:
    last_30 = {"record_type": "messaging", "date_range": "last_30_days"}
    median, p95, page = _timed(
        lambda: client.detail_records.list(filter=last_30, page_size=20), runs
    )
    print("\nfirst page of 20, last 30 days, newest first:")
    for record in page.data:
        print(
            f"  {record.created_at:%Y-%m-%d %H:%M:%S}  {record.direction:8} "
            f"{record.message_status:20} {record.cli:>16} -> {record.cld:<16} "  # type: ignore[attr-defined]
            f"{record.cost} {record.currency}"
        )
    print(f"detail_records.list page 1 (20): median {median:.1f} ms, p95 {p95:.1f} ms")
    failed = {**last_30, "status": "delivery_failed,sending_failed", "cld": {"starts_with": "+44"}}
    median, p95, page = _timed(
        lambda: client.detail_records.list(filter=failed, page_size=20), runs
    )
    print(
        f"detail_records.list failed to +44 (20): median {median:.1f} ms, p95 {p95:.1f} ms "
        f"({len(page.data)} records)"
    )
    end = datetime.now(UTC)
    start = end - timedelta(days=30)
    for aggregation in ("NO_AGGREGATION", "PROFILE", "TAGS"):
        median, p95, answer = _timed(
            lambda a=aggregation: client.reports.mdr_usage_reports.fetch_sync(  # type: ignore[misc]
                aggregation_type=a, start_date=start, end_date=end
            ),
            runs,
        )
        result = answer.data.result or []
        sent = sum(int(r.sent or 0) for r in result)
        print(
            f"mdr_usage_reports.fetch_sync 30 days {aggregation}: median {median:.1f} ms, "
            f"p95 {p95:.1f} ms ({len(result)} rows, {sent:,} sent)"
        )


if __name__ == "__main__":
    main()
