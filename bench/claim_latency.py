"""Claim latency (POST -> a worker holds the lease) per deployment, and PostgreSQL claim throughput.

    .venv/bin/python bench/claim_latency.py [--requests 50] [--postgres URL] [--claims 2000]

1. Generates a small lake (2,000 records, 2 days) into a work folder.
2. For each layout, starts the real processes on free ports and creates
   ``--requests`` report requests one at a time through the HTTP API, each once
   the previous one is Complete (so a worker is idle). A separate connection
   polls the request's row every millisecond for ``attempts >= 1`` (the claim).
   Latency is measured from the moment the POST's answer arrives (the create has
   committed) and, in brackets, from the moment the POST was sent.
   - ``postgresql split``: ``mdr serve --without-worker`` + ``mdr worker`` (LISTEN/NOTIFY);
   - ``sqlite embedded``: ``mdr serve`` with its in-process worker (woken in-process);
   - ``sqlite split``: ``mdr serve --without-worker`` + ``mdr worker`` (polling only).
3. Claim throughput on PostgreSQL: ``--claims`` Pending requests, 4 processes each
   looping claim -> complete through :class:`JobQueue` (no build): claims per second.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.worker.testing import make_request

MDR = [sys.executable, "-m", "mdr_reporting"]
BODY = {
    "start_time": "2026-03-06T00:00:00",
    "end_time": "2026-03-07T00:00:00",
    "directions": ["outbound"],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([*MDR, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mdr {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def processes(commands: list[list[str]], env: dict[str, str], logs: Path) -> Iterator[None]:
    started = []
    for n, command in enumerate(commands):
        with (logs / f"process-{n}.log").open("w") as log:
            started.append(
                subprocess.Popen([*MDR, *command], env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    try:
        yield
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(30)


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def postgres_schema(base: str) -> tuple[str, Callable[[], None]]:
    schema = "bench_" + secrets.token_hex(4)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", drop


def attempts_reader(catalog_url: str) -> Callable[[str], tuple[int, int]]:
    """(attempts, status) of one request, read over one dedicated connection."""
    if catalog_url.startswith("sqlite"):
        lite = sqlite3.connect(catalog_url.removeprefix("sqlite:///"), isolation_level=None)

        def read_lite(request_id: str) -> tuple[int, int]:
            row = lite.execute(
                "SELECT attempts, status FROM requests WHERE id = ?", (request_id,)
            ).fetchone()
            return (int(row[0]), int(row[1])) if row else (0, 0)

        return read_lite
    pg = psycopg.connect(catalog_url, autocommit=True)

    def read_pg(request_id: str) -> tuple[int, int]:
        row = pg.execute(
            "SELECT attempts, status FROM requests WHERE id = %s", (request_id,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    return read_pg


def latencies(url: str, key: str, catalog_url: str, count: int) -> tuple[list[float], list[float]]:
    read = attempts_reader(catalog_url)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    after_commit, after_send = [], []
    for _ in range(count + 1):  # the first one warms the worker up and is not counted
        sent = time.perf_counter()
        answer = client.post("/reporting/mdr_requests", json=BODY)
        answered = time.perf_counter()
        answer.raise_for_status()
        request_id = answer.json()["id"]
        while read(request_id)[0] < 1:
            time.sleep(0.001)
        claimed = time.perf_counter()
        after_commit.append(claimed - answered)
        after_send.append(claimed - sent)
        deadline = time.monotonic() + 60
        while read(request_id)[1] == 1:  # let it finish: the worker is idle again
            if time.monotonic() > deadline:
                raise SystemExit(f"request {request_id} did not finish")
            time.sleep(0.005)
        time.sleep(0.05)
    client.close()
    return after_commit[1:], after_send[1:]


def layout(
    name: str, catalog_url: str, lake: Path, work: Path, split: bool, count: int
) -> tuple[str, list[float], list[float]]:
    data = work / f"data-{name.replace(' ', '-')}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    env.update(
        MDR_DATA_DIR=str(data),
        MDR_CATALOG_URL=catalog_url,
        MDR_LAKE_URL=lake.as_uri(),
        MDR_SIGNING_SECRET="bench-secret-0123456789",
        MDR_LOG_LEVEL="warning",
    )
    run("migrate", env=env)
    catalog = Catalog(catalog_url)
    if catalog.get_account("acct-01") is None:
        catalog.create_account("acct-01", account_id="acct-01")
    key = catalog.create_key("acct-01", KeyScope.REPORTS).secret
    catalog.close()
    port = free_port()
    commands = [["serve", "--port", str(port), *(["--without-worker"] if split else [])]]
    if split:
        commands.append(["worker", "--concurrency", "1"])
    logs = work / f"logs-{name.replace(' ', '-')}"
    logs.mkdir(parents=True, exist_ok=True)
    with processes(commands, env, logs):
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        time.sleep(2)  # the worker process has started and listens
        commit, send = latencies(url, key, catalog_url, count)
    return name, commit, send


def _claimer(catalog_url: str, results: multiprocessing.Queue[tuple[int, float, float]]) -> None:
    """Claim and complete until the queue is empty; report (count, first claim, last done)."""
    catalog = Catalog(catalog_url)
    queue = JobQueue(catalog, lease=timedelta(seconds=60), max_attempts=3, retention=timedelta(1))
    owner = f"bench-{os.getpid()}"
    done, first, last = 0, 0.0, 0.0
    while (claim := queue.claim(owner)) is not None:
        first = first or time.time()
        key = f"{claim.state.id}/x.csv"
        queue.complete(claim.state.id, owner, file_key=key, record_count=0, size_bytes=0)
        done += 1
        last = time.time()
    catalog.close()
    results.put((done, first, last))


def claim_throughput(base: str, claims: int, procs: int = 4) -> tuple[int, float]:
    """Claims completed per second by ``procs`` processes, from the first claim to the last."""
    url, drop = postgres_schema(base)
    try:
        catalog = Catalog(url)
        catalog.migrate()
        for _ in range(claims):
            make_request(catalog)
        catalog.close()
        results: multiprocessing.Queue[tuple[int, float, float]] = multiprocessing.Queue()
        workers = [
            multiprocessing.Process(target=_claimer, args=(url, results)) for _ in range(procs)
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=600) for _ in workers]
        for worker in workers:
            worker.join()
        total = sum(n for n, _, _ in outcomes)
        started = min(f for n, f, _ in outcomes if n)
        return total, max(last for _, _, last in outcomes) - started
    finally:
        drop()


def describe(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[int(len(ms) * 0.9) - 1]
    return f"median {statistics.median(ms):.1f} ms, p90 {p90:.1f} ms, max {ms[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "MDR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--claims", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mdr-claim-bench-") as tmp:
        work = Path(tmp)
        lake = work / "lake"
        records = work / "records.parquet"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
        run(
            "generate",
            "--records",
            "2000",
            "--accounts",
            "2",
            "--days",
            "2",
            "--start",
            "2026-03-06",
            "--seed",
            "1",
            "--out",
            str(records),
            env=env,
        )
        run(
            "ingest",
            str(records),
            "--create-accounts",
            "--data-dir",
            str(work / "seed"),
            env={**env, "MDR_LAKE_URL": lake.as_uri()},
        )
        pg_url, drop = postgres_schema(args.postgres)
        results = []
        try:
            results.append(layout("postgresql split", pg_url, lake, work, True, args.requests))
        finally:
            drop()
        sqlite_embedded = f"sqlite:///{work / 'embedded.db'}"
        results.append(layout("sqlite embedded", sqlite_embedded, lake, work, False, args.requests))
        sqlite_split = f"sqlite:///{work / 'split.db'}"
        results.append(layout("sqlite split", sqlite_split, lake, work, True, args.requests))
    print(f"claim latency over {args.requests} requests, one idle worker:")
    for name, commit, send in results:
        print(f"  {name:17s} after commit: {describe(commit)}  (after send: {describe(send)})")
    done, seconds = claim_throughput(args.postgres, args.claims)
    rate = done / seconds
    print(f"PostgreSQL claim+complete, 4 processes: {done} in {seconds:.2f} s = {rate:,.0f}/s")


if __name__ == "__main__":
    main()
