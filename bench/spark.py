"""Spark benchmark: one large report on the same lake files with DuckDB and with Spark.

Generates ``--records`` records for one account over ``--days`` days (the
project's generator, appended through the real lake), starts a Spark
standalone cluster of ``--workers`` one-core workers on 127.0.0.1, and builds
the report of every record (CSV, America/Chicago, message bodies included)
with the DuckDB engine and with the Spark engine; checks the two files are
byte-identical and prints times, rows/s and rows/s per core.

    .venv/bin/python bench/spark.py                       # 1M records, 7 days, 2 workers
    .venv/bin/python bench/spark.py --records 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines.duckdb import DuckDBEngine
from mdr_reporting.engines.spark import SparkEngine
from mdr_reporting.generator import generate
from mdr_reporting.lake import open_lake
from tests.spark_cluster import SparkCluster

FIRST_DAY = date(2026, 3, 1)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="2g")
    parser.add_argument("--executor-memory", default="1536m")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--duckdb-threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="mdr-bench-spark-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    lake_root = work / "lake"
    shutil.rmtree(lake_root, ignore_errors=True)
    started = time.perf_counter()
    table = generate(args.records, 1, args.days, FIRST_DAY, 7)
    lake = open_lake(lake_root.as_uri())
    for offset in range(0, table.num_rows, 500_000):
        lake.append(table.slice(offset, 500_000))
    account = table.column("account_id")[0].as_py()
    del table
    snapshot = lake.snapshot()
    files = sum(len(f) for f in snapshot.files.values())
    print(
        f"lake: {args.records:,} records, {args.days} days, {files} files "
        f"({time.perf_counter() - started:.1f} s)"
    )

    start = datetime.combine(FIRST_DAY, datetime.min.time(), UTC) - timedelta(days=1)
    request = ReportRequest(
        start_time=start,
        end_time=start + timedelta(days=args.days + 2),
        timezone="America/Chicago",
        directions=tuple(Direction),
        record_types=tuple(RecordType),
        include_message_body=True,
    )
    query = compile_query(request, [account])

    duck = DuckDBEngine(memory_limit="2GB", threads=args.duckdb_threads)
    duck_times = []
    for _ in range(args.repeat):
        begun = time.perf_counter()
        duck_result = duck.build(query, snapshot, work / "duckdb.csv")
        duck_times.append(time.perf_counter() - begun)
    rows = duck_result.rows

    with SparkCluster(
        work / "cluster", workers=args.workers, worker_memory=args.worker_memory
    ) as c:
        conf = {**c.client_conf(), "spark.executor.memory": args.executor_memory}
        conf.pop("spark.sql.files.minPartitionNum")
        spark = SparkEngine(c.master_url, conf)
        begun = time.perf_counter()
        spark.session()
        session_s = time.perf_counter() - begun
        spark_times = []
        for _ in range(args.repeat + 1):  # the first build warms the executors up
            begun = time.perf_counter()
            spark_result = spark.build(query, snapshot, work / "spark.csv")
            spark_times.append(time.perf_counter() - begun)
        spark.close()

    same = (work / "duckdb.csv").read_bytes() == (work / "spark.csv").read_bytes()
    assert spark_result.rows == rows
    best_duck, first_spark, best_spark = min(duck_times), spark_times[0], min(spark_times[1:])
    size = (work / "duckdb.csv").stat().st_size
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"report: {rows:,} rows, {size / 2**20:.0f} MiB CSV, byte-identical: {same} "
        f"(sha256 {digest(work / 'duckdb.csv')} / {digest(work / 'spark.csv')})"
    )
    print(
        f"duckdb ({args.duckdb_threads} threads): best {best_duck:.1f} s of "
        f"{[round(t, 1) for t in duck_times]}, {rows / best_duck:,.0f} rows/s, "
        f"{rows / best_duck / args.duckdb_threads:,.0f} rows/s per core"
    )
    print(
        f"spark ({args.workers} one-core executors): session {session_s:.1f} s, "
        f"first build {first_spark:.1f} s, warm best {best_spark:.1f} s of "
        f"{[round(t, 1) for t in spark_times[1:]]}, {rows / best_spark:,.0f} rows/s, "
        f"{rows / best_spark / args.workers:,.0f} rows/s per executor core"
    )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    if not same:
        raise SystemExit("the two reports differ")


if __name__ == "__main__":
    main()
