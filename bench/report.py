"""Report benchmark: this service's DuckDB engine against raw DuckDB COPY and PostgreSQL COPY.

Builds a synthetic lake (Parquet per UTC day, each file sorted by account_id
then created_at, ~5% of ids re-ingested with a later status), then times:
(a) the engine's build, (b) raw DuckDB ``COPY (SELECT ...) TO`` of the same
rows over the same files (no latest-version pass, no zone formatting), (c)
PostgreSQL ``COPY (SELECT ...) TO STDOUT WITH CSV HEADER`` over the latest
versions with an index on (account_id, created_at).  Also the peak RSS of a
process building the largest report.

    .venv/bin/python bench/report.py                 # 10M records, 30 days, 20 accounts
    .venv/bin/python bench/report.py --records 1000000 --no-postgres
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.query import ReportQuery, compile_query
from mdr_reporting.domain.records import MONEY, RECORD_SCHEMA, REPORT_COLUMNS
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines.duckdb import DuckDBEngine
from mdr_reporting.lake.base import Snapshot

FIRST_DAY = date(2024, 1, 1)
STATUSES = np.array(["delivered", "delivered", "delivered", "sent", "delivery_failed", "received"])
TAGS = [None, [], ["vip"], ["campaign-7"], ["vip", "campaign-7"]]
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def account_sizes(records: int, accounts: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like shares: the biggest account has about a quarter of the traffic."""
    weights = 1.0 / np.arange(1, accounts + 1) ** 1.1
    return rng.multinomial(records, weights / weights.sum())


def _money(micros: np.ndarray) -> pa.Array:
    """Exact decimal(18, 6) values from integer millionths, built from raw 128-bit words."""
    words = np.zeros((len(micros), 2), dtype=np.int64)
    words[:, 0] = micros
    words[:, 1] = np.where(micros < 0, -1, 0)
    return pa.Array.from_buffers(MONEY, len(micros), [None, pa.py_buffer(words.tobytes())])


def _day_table(
    day: date, accounts: np.ndarray, start_id: int, rng: np.random.Generator
) -> pa.Table:
    n = len(accounts)
    day_us = int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1_000_000)
    created = day_us + rng.integers(0, 86_400_000_000, n)
    sent = created + rng.integers(0, 5_000_000, n)
    completed = sent + rng.integers(0, 60_000_000, n)
    ids = pc.binary_join_element_wise(
        "msg-", pc.cast(pa.array(np.arange(start_id, start_id + n)), pa.string()), ""
    )
    cli = pc.binary_join_element_wise(
        "+1", pc.cast(pa.array(rng.integers(2_000_000_000, 9_999_999_999, n)), pa.string()), ""
    )
    cld = pc.binary_join_element_wise(
        "+44", pc.cast(pa.array(rng.integers(7_000_000_000, 7_999_999_999, n)), pa.string()), ""
    )
    status = STATUSES[rng.integers(0, len(STATUSES), n)]
    rate_micros = rng.integers(1_000, 9_000, n)
    parts = rng.integers(1, 4, n).astype(np.int32)
    tags_index = rng.integers(0, len(TAGS), n)
    columns: dict[str, Any] = {
        "id": ids,
        "account_id": pa.array(accounts),
        "created_at": pa.array(created, pa.timestamp("us", tz="UTC")),
        "updated_at": pa.array(completed, pa.timestamp("us", tz="UTC")),
        "sent_at": pa.array(sent, pa.timestamp("us", tz="UTC")),
        "completed_at": pa.array(completed, pa.timestamp("us", tz="UTC")),
        "direction": pa.array(np.where(rng.random(n) < 0.7, "outbound", "inbound")),
        "cli": cli,
        "cld": cld,
        "message_type": pa.array(np.where(rng.random(n) < 0.9, "SMS", "MMS")),
        "parts": pa.array(parts),
        "status": pa.array(status),
        "error_code": pa.nulls(n, pa.string()),
        "carrier": pa.array(np.where(rng.random(n) < 0.5, "T-Mobile USA, Inc.", "Vodafone UK")),
        "mcc": pa.array(np.full(n, "310")),
        "mnc": pa.array(np.full(n, "260")),
        "country_code": pa.array(np.full(n, "US")),
        "connection_id": pa.array(np.char.add("conn-", (tags_index % 3).astype(str))),
        "profile_id": pa.array(np.char.add("prof-", (tags_index % 2).astype(str))),
        "tags": pc.take(pa.array(TAGS, pa.list_(pa.string())), pa.array(tags_index)),
        "rate": _money(rate_micros),
        "cost": _money(rate_micros * parts),
        "currency": pa.array(np.full(n, "USD")),
        "media_size_bytes": pa.nulls(n, pa.int64()),
        "message_body": pa.array(np.full(n, 'Your code is 1234. "Reply" STOP, to end')),
    }
    return pa.table(columns, schema=RECORD_SCHEMA)


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("account_id", "ascending"), ("created_at", "ascending")])


def build_lake(
    root: Path, records: int, days: int, accounts: int, seed: int, row_group_rows: int
) -> Snapshot:
    """Two files per day (an ingest batch and a later batch of re-ingested status changes)."""
    rng = np.random.default_rng(seed)
    sizes = account_sizes(records, accounts, rng)
    names = np.array([f"acct-{i:02d}" for i in range(accounts)])
    account_of = np.repeat(names, sizes)
    rng.shuffle(account_of)
    day_of = rng.integers(0, days, records)
    files: dict[date, tuple[str, ...]] = {}
    next_id = 0
    for offset in range(days):
        day = FIRST_DAY + timedelta(days=offset)
        table = _day_table(day, account_of[day_of == offset], next_id, rng)
        next_id += table.num_rows
        again = table.filter(pa.array(rng.random(table.num_rows) < 0.05))
        later = pc.add(again["updated_at"], pa.scalar(3_600_000_000, pa.duration("us")))
        again = again.set_column(3, "updated_at", later.cast(pa.timestamp("us", tz="UTC")))
        again = again.set_column(11, "status", pa.array(np.full(again.num_rows, "delivered")))
        folder = root / f"day={day.isoformat()}"
        folder.mkdir(parents=True)
        paths = []
        for index, part in enumerate((table, again)):
            path = folder / f"part-{index}.parquet"
            pq.write_table(_sorted(part), path, row_group_size=row_group_rows, compression="zstd")
            paths.append(str(path))
        files[day] = tuple(paths)
    return Snapshot(1, files)


def read_lake(root: Path) -> Snapshot:
    """The snapshot of a lake that an earlier run left in ``root``."""
    files = {
        date.fromisoformat(folder.name.removeprefix("day=")): tuple(
            str(path) for path in sorted(folder.glob("*.parquet"))
        )
        for folder in sorted(root.iterdir())
    }
    return Snapshot(1, files)


def project_lake(root: Path, args: argparse.Namespace, *, reuse: bool) -> Snapshot:
    """The project's generator (``mdr generate``) appended through the real lake in batches."""
    from mdr_reporting.generator import generate
    from mdr_reporting.lake import open_lake

    if not (reuse and (root / "_manifest.json").exists()):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        table = generate(args.records, args.accounts, args.days, FIRST_DAY, args.seed)
        lake = open_lake(root.resolve().as_uri())
        for offset in range(0, table.num_rows, 1_000_000):
            lake.append(table.slice(offset, 1_000_000))
        del table
    lake = open_lake(root.resolve().as_uri())
    snapshot = lake.snapshot()
    lake.release(snapshot)  # nothing compacts this lake while the benchmark reads it
    return snapshot


def accounts_by_size(snapshot: Snapshot) -> list[str]:
    """Account ids, most records first."""
    files = [f for day in sorted(snapshot.files) for f in snapshot.files[day]]
    rows = duckdb.execute(
        "SELECT account_id FROM read_parquet($files, hive_partitioning = false) "
        "GROUP BY account_id ORDER BY count(*) DESC, account_id",
        {"files": files},
    ).fetchall()
    return [row[0] for row in rows]


def postgres_loaded(snapshot: Snapshot, table: str = "bench_mdr") -> bool:
    """Whether an earlier run loaded this very lake completely."""
    import psycopg

    with psycopg.connect(PG_URL) as pg:
        found = pg.execute(f"SELECT obj_description(to_regclass('{table}'))").fetchone()
        return bool(found and found[0] == _lake_tag(snapshot))


def ensure_postgres(snapshot: Snapshot, table: str) -> None:
    """``table`` holds the latest versions of this lake (loaded now unless it already does)."""
    if not postgres_loaded(snapshot, table):
        began = time.perf_counter()
        load_postgres(snapshot, table)
        print(f"  postgres table {table} loaded in {time.perf_counter() - began:.1f}s")


def _lake_tag(snapshot: Snapshot) -> str:
    return f"lake {sorted(f for files in snapshot.files.values() for f in files)[:3]}"


def request_for(account: str, days: int, first_day: date) -> tuple[ReportRequest, list[str]]:
    start = datetime.combine(first_day, datetime.min.time(), UTC)
    return (
        ReportRequest(
            start_time=start,
            end_time=start + timedelta(days=days),
            timezone="America/Chicago",
            directions=tuple(Direction),
            record_types=tuple(RecordType),
        ),
        [account],
    )


def timed(runs: dict[str, Callable[[], int]], repeat: int) -> dict[str, tuple[int, float, float]]:
    """Rows, the best of ``repeat`` wall-clock runs of each (interleaved), and the least
    CPU time this process spent in one run (DuckDB's threads included; PostgreSQL's server
    is another process, so its figure is the client's only).

    Interleaving and taking the best keeps other load on a shared machine from
    favouring one side; CPU time is what load changes least.
    """
    best: dict[str, tuple[int, float, float]] = {}
    for _ in range(repeat):
        for name, run in runs.items():
            began, cpu = time.perf_counter(), time.process_time()
            rows = run()
            elapsed, used = time.perf_counter() - began, time.process_time() - cpu
            if name not in best:
                best[name] = (rows, elapsed, used)
            else:
                best[name] = (rows, min(elapsed, best[name][1]), min(used, best[name][2]))
    return best


def engine_run(query: ReportQuery, snapshot: Snapshot, out: Path) -> Callable[[], int]:
    engine = DuckDBEngine(memory_limit="512MB")
    return lambda: engine.build(query, snapshot, out).rows


def raw_duckdb_run(query: ReportQuery, snapshot: Snapshot, out: Path) -> Callable[[], int]:
    """The same rows written by one plain COPY: no latest-version pass, UTC timestamps
    (the query's first account only)."""
    files = [f for day in snapshot.days(query.start, query.end) for f in snapshot.files[day]]
    columns = ", ".join(c for c in REPORT_COLUMNS if c != "record_type")

    def run() -> int:
        con = duckdb.connect(
            config={"memory_limit": "512MB", "temp_directory": str(out.parent / "duckdb-spill")}
        )
        sql = f"""COPY (SELECT {columns} FROM read_parquet($files, hive_partitioning = false)
                  WHERE account_id = $account AND created_at >= $start AND created_at < $end
                  ORDER BY created_at, id) TO '{out}' (FORMAT csv, HEADER true)"""
        params = {
            "files": files,
            "account": query.accounts[0],
            "start": query.start,
            "end": query.end,
        }
        result = con.execute(sql, params).fetchone()
        con.close()
        return int(result[0]) if result else 0

    return run


def load_postgres(snapshot: Snapshot, table: str = "bench_mdr") -> None:
    """The latest version of every record in one table with an (account_id, created_at) index."""
    import psycopg

    con = duckdb.connect()
    with psycopg.connect(PG_URL, autocommit=True) as pg:
        pg.execute(f"DROP TABLE IF EXISTS {table}")
        pg.execute(
            f"""CREATE UNLOGGED TABLE {table} (
                id text, account_id text, created_at timestamptz, updated_at timestamptz,
                sent_at timestamptz, completed_at timestamptz, direction text, cli text,
                cld text, message_type text, parts int, status text, error_code text,
                carrier text, mcc text, mnc text, country_code text, connection_id text,
                profile_id text, tags text, rate numeric(18,6), cost numeric(18,6),
                currency text, media_size_bytes bigint, message_body text)"""
        )
        plain = ", ".join(n for n in RECORD_SCHEMA.names if n != "tags")  # not the folded ones
        for day in sorted(snapshot.files):
            files = list(snapshot.files[day])
            buffer = io.BytesIO()
            path = Path(tempfile.mkdtemp()) / "day.csv"
            con.execute(
                f"""COPY (SELECT {plain}, array_to_string(tags, ';') AS tags
                    FROM read_parquet($files, hive_partitioning = false)
                    QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1)
                    TO '{path}' (FORMAT csv, HEADER false)""",
                {"files": files},
            )
            buffer.write(path.read_bytes())
            shutil.rmtree(path.parent)
            names = [n for n in RECORD_SCHEMA.names if n != "tags"] + ["tags"]
            with (
                pg.cursor() as cursor,
                cursor.copy(
                    f"COPY {table} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)"
                ) as copy,
            ):
                copy.write(buffer.getvalue())
        pg.execute(f"CREATE INDEX {table}_account_created ON {table} (account_id, created_at)")
        pg.execute(f"ANALYZE {table}")
        pg.execute(f"COMMENT ON TABLE {table} IS {_pg_literal(_lake_tag(snapshot))}")


def postgres_run(
    query: ReportQuery, out: Path, *, table: str = "bench_mdr", timeout: float = 0
) -> Callable[[], int]:
    """PostgreSQL COPY of the query's rows (its accounts and window, every record)."""
    import psycopg

    columns = ", ".join(c for c in REPORT_COLUMNS if c != "record_type")
    accounts = ", ".join(_pg_literal(a) for a in query.accounts)

    def run() -> int:
        rows = 0
        with psycopg.connect(PG_URL) as pg, pg.cursor() as cursor, out.open("wb") as sink:
            cursor.execute("SET TIME ZONE 'America/Chicago'")
            if timeout:
                cursor.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            sql = (
                f"COPY (SELECT {columns} FROM {table} WHERE account_id IN ("
                f"{accounts}) AND created_at >= "
                f"{_pg_literal(query.start.isoformat())} AND created_at < "
                f"{_pg_literal(query.end.isoformat())} ORDER BY created_at, id) "
                "TO STDOUT WITH CSV HEADER"
            )
            with cursor.copy(sql) as copy:
                for chunk in copy:
                    sink.write(chunk)
                    rows += bytes(chunk).count(b"\n")
        return rows - 1

    return run


def _pg_literal(value: str) -> str:
    # Benchmark-only values of our own making; COPY (SELECT ...) cannot take bind parameters.
    return "'" + value.replace("'", "''") + "'"


def _peak_rss_child(query: ReportQuery, snapshot: Snapshot, out: Path, queue: Any) -> None:
    process = psutil.Process()
    peak = 0
    done = False

    import threading

    def watch() -> None:
        nonlocal peak
        while not done:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rows = DuckDBEngine(memory_limit="512MB").build(query, snapshot, out).rows
    done = True
    watcher.join()
    queue.put((rows, peak))


def peak_rss(query: ReportQuery, snapshot: Snapshot, out: Path) -> tuple[int, int]:
    """Rows and peak RSS of a fresh process that builds the report."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_peak_rss_child, args=(query, snapshot, out, queue))
    child.start()
    rows, peak = queue.get()
    child.join()
    return int(rows), int(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--big-days", type=int, default=0, help="days of the biggest account's report (0: --days)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("bench/out"))
    parser.add_argument(
        "--row-group-rows",
        type=int,
        default=122_880,
        help="Parquet row group size: small groups let one account's report skip the others'",
    )
    parser.add_argument(
        "--source",
        choices=("project", "synthetic"),
        default="project",
        help="project: mdr's generator written through the real lake; synthetic: this script's",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--pg-table", default="bench_mdr", help="PostgreSQL table of the rows")
    parser.add_argument("--reuse", action="store_true", help="reuse the lake and table if present")
    args = parser.parse_args()

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"duckdb {duckdb.__version__}, pyarrow {pa.__version__}")
    lake_root = args.workdir / f"{args.source}-lake"
    began = time.perf_counter()
    if args.source == "project":
        snapshot = project_lake(lake_root, args, reuse=args.reuse)
    elif args.reuse and lake_root.exists():
        snapshot = read_lake(lake_root)
    else:
        shutil.rmtree(lake_root, ignore_errors=True)
        snapshot = build_lake(
            lake_root, args.records, args.days, args.accounts, args.seed, args.row_group_rows
        )
    files = sum(len(f) for f in snapshot.files.values())
    print(
        f"lake ({args.source}): {files} files over {len(snapshot.files)} days, "
        f"ready in {time.perf_counter() - began:.1f}s"
    )
    if not args.no_postgres and not (args.reuse and postgres_loaded(snapshot, args.pg_table)):
        began = time.perf_counter()
        load_postgres(snapshot, args.pg_table)
        print(f"postgres loaded in {time.perf_counter() - began:.1f}s")

    big_days = args.big_days or args.days
    ranked = accounts_by_size(snapshot)
    big, mid = ranked[0], ranked[min(2, len(ranked) - 1)]
    print(f"biggest account {big}, selective report on the third biggest, {mid}")
    cases = {
        f"{mid[:10]}, 7 days": request_for(mid, 7, FIRST_DAY + timedelta(days=10)),
        f"{big[:10]}, {big_days} days": request_for(big, big_days, FIRST_DAY),
    }
    out = args.workdir / "report.csv"
    print(
        f"{'report':<20}{'rows':>12}{'engine s':>10}{'duckdb s':>10}{'pg s':>8}"
        f"{'rows/s':>12}{'duck/eng':>10}{'pg/eng':>8}"
    )
    for label, (req, accounts) in cases.items():
        query = compile_query(req, accounts)
        runs = {
            "engine": engine_run(query, snapshot, out),
            "duckdb": raw_duckdb_run(query, snapshot, out),
        }
        if not args.no_postgres:
            runs["postgres"] = postgres_run(query, out, table=args.pg_table)
        best = timed(runs, args.repeat)
        rows, engine_s, engine_cpu = best["engine"]
        raw_rows, raw_s, raw_cpu = best["duckdb"]
        pg_s = best["postgres"][1] if "postgres" in best else float("nan")
        print(
            f"{label:<20}{rows:>12,}{engine_s:>10.2f}{raw_s:>10.2f}{pg_s:>8.2f}"
            f"{rows / engine_s:>12,.0f}{raw_s / engine_s:>10.2f}{pg_s / engine_s:>8.2f}"
            f"   (raw rows {raw_rows:,}: all versions; CPU s engine {engine_cpu:.2f}, "
            f"raw {raw_cpu:.2f}: raw/engine {raw_cpu / engine_cpu:.2f})"
        )
    for days in sorted({1, 7, args.days}):
        req, accounts = request_for(big, days, FIRST_DAY)
        rows, peak = peak_rss(compile_query(req, accounts), snapshot, out)
        print(f"peak RSS of a process building {rows:,} rows ({days} days): {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
