"""Where POST-to-Complete goes: the biggest account's 30-day report through ``mdr serve``,
each build followed by ``DuckDBEngine.build`` of the same query in this process.

    .venv/bin/python bench/api_timeline.py DATA_DIR [ROUNDS]

DATA_DIR is a data folder bench/report_api.py prepared (``<workdir>/data-3300000``).  For
each build it prints the POST time, when the worker claimed it (``started_at``) and
completed it (from the catalog), the CPU of the worker child, of the API process and of
this client (its 5 ms polls), and the engine alone on the same query beside it.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report as rb
import report_api as ra

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").glob("*/children")
    return [int(c) for t in tasks for c in t.read_text().split()]


def seconds_after(text: str | None, origin: float) -> float:
    if text is None:
        return float("nan")
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() - origin


def main() -> None:
    data = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    key = json.loads((data / "bench-keys.json").read_text())["reports"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    port = ra.free_port()
    url = f"http://127.0.0.1:{port}"
    with (data / "timeline-serve.log").open("w") as log:
        server = subprocess.Popen(
            [*ra.MDR, "serve", "--port", str(port), "--data-dir", str(data)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "MDR_LOG_LEVEL": "info", "MDR_CREATE_RATE_LIMIT_RPS": "0"},
        )
        try:
            ra.wait_healthy(url, server)
            run(data, url, key, rounds, server.pid)
        finally:
            server.terminate()
            server.wait()


def run(data: Path, url: str, key: str, rounds: int, pid: int) -> None:
    first = datetime.combine(ra.START, datetime.min.time(), UTC)
    big = {
        **ra.window(first, timedelta(days=ra.DAYS)),
        "managed_accounts": ["acct-01"],
        "directions": [],
        "record_types": [1, 2, 3],
    }
    snapshot = ra.lake_snapshot(data)
    query = ra.query_of(big, ["bench", "acct-01"])  # the API's: the key's own account too
    engine = rb.engine_run(query, snapshot, data / "engine-alone.csv")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
        ra.forget_reports(client)
        ra.timed_report(client, {**big, **ra.window(first, timedelta(days=1))})  # page cache
        for zone in ra.UTC_NAMES * rounds:
            ra.forget_reports(client)
            kids = children(pid)
            before = sum(map(cpu, kids)), cpu(pid), time.process_time()
            began, origin = time.perf_counter(), time.time()
            request_id = client.post(ra.V1, json={**big, "timezone": zone}).json()["id"]
            posted = time.perf_counter() - began
            polls = 0
            while client.get(f"{ra.V1}/{request_id}").json()["status"] == 1:
                polls += 1
                time.sleep(0.005)
            total = time.perf_counter() - began
            after = sum(map(cpu, kids)), cpu(pid), time.process_time()
            with sqlite3.connect(data / "catalog.db") as db:
                started, completed, rows = db.execute(
                    "SELECT started_at, completed_at, record_count FROM requests WHERE id = ?",
                    (request_id,),
                ).fetchone()
            print(
                f"API {zone}: {total:.3f} s (POST {posted:.3f}, claimed "
                f"{seconds_after(started, origin):.3f}, completed "
                f"{seconds_after(completed, origin):.3f}), {rows:,} rows; CPU s: worker "
                f"{after[0] - before[0]:.2f}, API {after[1] - before[1]:.2f}, client "
                f"{after[2] - before[2]:.2f} ({polls} polls)",
                flush=True,
            )
            began = time.perf_counter()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            rows = engine()
            done = resource.getrusage(resource.RUSAGE_SELF)
            used = done.ru_utime + done.ru_stime - usage.ru_utime - usage.ru_stime
            print(
                f"  engine alone: {time.perf_counter() - began:.3f} s, {rows:,} rows, "
                f"CPU {used:.2f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
