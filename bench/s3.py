"""S3 figures on moto (server mode, 127.0.0.1): GET throughput, lake commits/s, day-copy time.

    .venv/bin/python bench/s3.py [--processes 1,3] [--records 1000000]
        [--compare-with DIR] [--rounds 2]

``--compare-with DIR`` (another checkout, e.g. ``git archive <commit> | tar -x -C DIR``)
measures its lake commits in the same run, alternating with this checkout's, each on a
fresh bucket and manifest; ``--rounds`` times each (the best is what counts on a busy
machine).
Needs the moto venv (`make .venv-moto/.created`) and, for the commit figures with a
PostgreSQL manifest, MDR_TEST_POSTGRES_URL (else SQLite).  Prints one line per figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import obstore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

from mdr_reporting.catalog import Catalog  # noqa: E402
from mdr_reporting.lake.s3 import S3Lake  # noqa: E402
from mdr_reporting.objectstore import S3Location, connect  # noqa: E402
from tests.conftest import _start_moto, postgres_schema_url  # noqa: E402

APPENDER = """
import sys, time
from mdr_reporting.lake.s3 import S3Lake
from mdr_reporting.objectstore import S3Location
from tests.records import record, table
bucket, endpoint, catalog, first, count = sys.argv[1:6]
lake = S3Lake(S3Location(bucket, "lake", endpoint), catalog)
batches = [table([record(int(first) + n * 100 + i, account_id=f"acct-{i % 5}") for i in range(100)])
           for n in range(int(count))]
start = time.perf_counter()
for batch in batches:
    lake.append(batch)
print(time.perf_counter() - start, flush=True)
"""


def get_throughput(endpoint: str, bucket: str) -> None:
    store = connect(S3Location(bucket, "raw", endpoint))
    blob = os.urandom(64 * 1024 * 1024)
    obstore.put(store, "blob", blob)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        size = len(obstore.get(store, "blob").bytes())
        best = max(best, size / (time.perf_counter() - start) / 2**20)
    print(f"GET throughput (one 64 MiB object, obstore, best of 3): {best:,.0f} MiB/s")


def commits(
    endpoint: str,
    bucket: str,
    processes: int,
    catalog_url: str,
    root: Path = ROOT,
    label: str = "",
) -> float:
    count = 40
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                APPENDER,
                bucket,
                endpoint,
                catalog_url,
                str(n * 10**6),
                str(count),
            ],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        for n in range(processes)
    ]
    elapsed = 0.0
    for child in children:
        out, _ = child.communicate(timeout=600)
        assert child.returncode == 0
        elapsed = max(elapsed, float(out.split()[-1]))  # appends only, not start-up
    rate = processes * count / elapsed
    kind = catalog_url.split(":")[0]
    print(
        f"{label}lake appends of 100 rows, {processes} process(es) at once, {kind} manifest: "
        f"{rate:,.1f} commits/s in total ({processes * count} commits, {elapsed:.1f} s, "
        "one day: all contend for one lock)",
        flush=True,
    )
    return rate


def day_copy(endpoint: str, bucket: str, records: int, work: Path) -> None:
    """Build the same CSV report from a local lake and from the S3 lake (day copies)."""
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mdr_reporting.domain.query import compile_query
    from mdr_reporting.domain.requests import parse_v1
    from mdr_reporting.engines.duckdb import DuckDBEngine
    from mdr_reporting.lake.local import LocalLake

    source = work / "records.parquet"
    subprocess.run(
        [sys.executable, "-m", "mdr_reporting", "generate", "--records", str(records),
         "--accounts", "3", "--days", "7", "--start", "2026-03-01", "--seed", "1",
         "--out", str(source)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    table = pq.read_table(source)
    catalog_url = f"sqlite:///{work / 'catalog.db'}"
    catalog = Catalog(catalog_url)
    catalog.migrate()
    catalog.close()
    local = LocalLake(work / "lake")
    remote = S3Lake(S3Location(bucket, "copy-lake", endpoint), catalog_url)
    for lake in (local, remote):
        with lake.writer() as writer:
            for batch in table.to_batches(200_000):
                writer.add(pa.Table.from_batches([batch]))
            writer.commit()
    spec = parse_v1(
        {"start_time": "2026-03-01T00:00:00Z", "end_time": "2026-03-08T00:00:00Z"},
        datetime(2026, 3, 9, tzinfo=UTC),
    )
    query = compile_query(spec, ["acct-01", "acct-02", "acct-03"])
    engine = DuckDBEngine()
    for name, lake in (("local disk", local), ("S3 day copies", remote)):
        times = []
        for run in range(2):
            snapshot = lake.snapshot()
            out = work / f"report-{name[0]}-{run}.csv"
            start = time.perf_counter()
            result = engine.build(query, snapshot, out)
            times.append(time.perf_counter() - start)
            lake.release(snapshot)
        print(
            f"report of {result.rows:,} rows ({records:,} records, 7 days) from {name}: "
            f"{min(times):.1f} s (best of 2), {result.size_bytes / 2**20:,.0f} MiB CSV"
        )
    remote.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", default="1,3")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--compare-with", default="", help="another checkout to measure too")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    process, endpoint = _start_moto()
    try:
        bucket = "bench"
        httpx.put(f"{endpoint}/{bucket}").raise_for_status()
        get_throughput(endpoint, bucket)
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            postgres = os.environ.get("MDR_TEST_POSTGRES_URL")
            trees = [(ROOT, "this checkout: ")]
            if args.compare_with:
                trees.insert(0, (Path(args.compare_with).resolve(), "compared checkout: "))
            runs = 0
            for n in [int(p) for p in args.processes.split(",")]:
                best: dict[str, float] = {}
                for _ in range(args.rounds if args.compare_with else 1):
                    for root, label in trees:
                        runs += 1
                        schemas = postgres_schema_url() if postgres else None  # its own schema
                        catalog_url = (
                            next(schemas) if schemas else f"sqlite:///{work / f'c-{runs}.db'}"
                        )
                        catalog = Catalog(catalog_url)
                        catalog.migrate()
                        catalog.close()
                        httpx.put(f"{endpoint}/{bucket}-{runs}").raise_for_status()
                        rate = commits(endpoint, f"{bucket}-{runs}", n, catalog_url, root, label)
                        best[label] = max(best.get(label, 0.0), rate)
                        if schemas:
                            next(schemas, None)  # drops the schema
                if args.compare_with:
                    print(
                        f"best of {args.rounds}, {n} processes: "
                        + ", ".join(f"{k.rstrip(': ')} {v:,.1f} commits/s" for k, v in best.items())
                    )
            if args.records:
                day_copy(endpoint, bucket, args.records, work)
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
