"""Load benchmark: 200 concurrent clients against one real `mdr serve` while ingest runs.

    .venv/bin/python bench/load.py [--users 200] [--seconds 60] [--batch 1000]

Needs locust (``pip install -c constraints.txt -e '.[bench]'``, done by ``make bench``).

1. A fresh data folder under bench/out/, 200 accounts under one parent, a `reports`
   key per account (one key per client, so per-key limits are not what is measured)
   and an `ingest` key of the parent; where the settings for rate limits and the
   Pending cap exist, they are raised through MDR_* variables for the server.
2. `mdr serve` (API; worker and sweeper in its child process) on a free port; 40,000
   records loaded over HTTP first.
3. locust, headless and bounded in time: ``--users`` clients (think time 0.5-1.5 s),
   70% status reads, 20% lists, 10% small report creates; meanwhile one client posts
   ``--batch``-record NDJSON batches back to back.
4. Prints errors (or 0 errors), p50/p95/p99 per operation, ingest rows/s, the server's
   peak RSS (sampled with psutil, and VmHWM) and the CPU of the API process (not of
   its worker child) during the run, and the machine's load average.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_api import wait_healthy

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.settings import SETTINGS

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
MDR = [sys.executable, "-m", "mdr_reporting"]
PARENT = "load-platform"
PRELOAD_BATCHES = 20
PRELOAD_BATCH = 2000
# Raised only where this build has the setting (the rate-limit work adds them).
GENEROUS = {
    "rate_limit_rps": "100000",
    "rate_limit_burst": "1000000",
    "create_rate_limit_rps": "100000",
    "create_rate_limit_burst": "1000000",
    "ingest_rate_limit_rps": "100000",
    "ingest_rate_limit_burst": "1000000",
    "max_pending_per_account": "0",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accounts(users: int) -> list[str]:
    return [f"load-{n:03d}" for n in range(users)]


def prepare(data: Path, users: int) -> tuple[list[str], str]:
    """Accounts and keys in a fresh catalog: a reports key per client, one ingest key."""
    shutil.rmtree(data, ignore_errors=True)
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}")
    catalog.migrate()
    catalog.create_account("Load platform", account_id=PARENT)
    keys = []
    for account in accounts(users):
        catalog.create_account(account, account_id=account, parent_id=PARENT)
        keys.append(catalog.create_key(account, KeyScope.REPORTS).secret)
    ingest_key = catalog.create_key(PARENT, KeyScope.INGEST).secret
    catalog.close()
    return keys, ingest_key


def batch(chance: random.Random, serial: int, size: int, users: int) -> bytes:
    """``size`` records of the last two days, spread over every account."""
    now = datetime.now(UTC)
    rows = []
    for n in range(size):
        created = now - timedelta(seconds=chance.randrange(2 * 86_400))
        rows.append(
            {
                "id": f"b{serial:06d}-{n:05d}",
                "account_id": f"load-{chance.randrange(users):03d}",
                "created_at": created.isoformat(),
                "sent_at": (created + timedelta(seconds=1)).isoformat(),
                "direction": chance.choice(["outbound", "outbound", "inbound"]),
                "cli": f"+1312555{chance.randrange(10_000):04d}",
                "cld": f"+1773555{chance.randrange(10_000):04d}",
                "status": chance.choice(["delivered", "delivered", "sent", "delivery_failed"]),
                "rate": "0.004000",
                "cost": "0.004000",
                "tags": ["load"],
                "message_body": "hello " * chance.randrange(1, 20),
            }
        )
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


class Server:
    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (data / "serve.log").open("w")
        self.process = subprocess.Popen(
            [*MDR, "serve", "--port", str(self.port), "--data-dir", str(data)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_healthy(self.url, self.process, data / "serve.log")
        self.ps = psutil.Process(self.process.pid)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
            except psutil.Error:
                return

    def vm_hwm_mib(self) -> float | None:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), None)
        return int(line.split()[1]) / 1024 if line else None

    def stop(self) -> None:
        self._stop.set()
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class IngestLoop:
    """One platform client posting batches back to back until stopped."""

    def __init__(self, url: str, key: str, size: int, users: int) -> None:
        self.url, self.key, self.size, self.users = url, key, size, users
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.rows = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        chance = random.Random(11)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/x-ndjson"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=120) as http:
            serial = 10_000
            while not self._stop.is_set():
                body = batch(chance, serial, self.size, self.users)
                serial += 1
                started = time.perf_counter()
                try:
                    answer = http.post("/ingest/mdrs", content=body)
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.latencies.append(time.perf_counter() - started)
                if answer.status_code == 200:
                    self.rows += self.size
                else:
                    self.errors.append(f"{answer.status_code}: {answer.text[:200]}")

    def start(self) -> None:
        self.started = time.perf_counter()
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(timeout=180)
        return time.perf_counter() - self.started


def preload(url: str, key: str, users: int) -> None:
    chance = random.Random(5)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        for serial in range(PRELOAD_BATCHES):
            answer = http.post("/ingest/mdrs", content=batch(chance, serial, PRELOAD_BATCH, users))
            answer.raise_for_status()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def report(prefix: Path, ingest: IngestLoop, ingest_seconds: float) -> int:
    """Print the figures; returns the number of errors."""
    with (prefix.parent / f"{prefix.name}_stats.csv").open() as handle:
        stats = list(csv.DictReader(handle))
    errors = 0
    print(
        f"{'operation':<22}{'requests':>9}{'errors':>8}{'req/s':>8}{'p50':>8}{'p95':>8}{'p99':>8}"
    )
    for row in stats:
        errors += int(row["Failure Count"]) if row["Name"] != "Aggregated" else 0
        print(
            f"{row['Name']:<22}{row['Request Count']:>9}{row['Failure Count']:>8}"
            f"{float(row['Requests/s']):>8.1f}{row['50%']:>6}ms{row['95%']:>6}ms{row['99%']:>6}ms"
        )
    lat = [x * 1000 for x in ingest.latencies]
    print(
        f"{'POST /ingest/mdrs':<22}{len(lat):>9}{len(ingest.errors):>8}"
        f"{len(lat) / ingest_seconds:>8.1f}{percentile(lat, 0.5):>6.0f}ms"
        f"{percentile(lat, 0.95):>6.0f}ms{percentile(lat, 0.99):>6.0f}ms"
        f"   ({ingest.size}-record batches, {ingest.rows / ingest_seconds:,.0f} rows/s)"
    )
    errors += len(ingest.errors)
    failures = prefix.parent / f"{prefix.name}_failures.csv"
    if failures.exists():
        with failures.open() as handle:
            for row in csv.DictReader(handle):
                print(
                    f"  error x{row['Occurrences']}: {row['Method']} {row['Name']}: {row['Error']}"
                )
    for error in ingest.errors[:10]:
        print(f"  ingest error: {error}")
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1000, help="records per ingest batch")
    args = parser.parse_args()
    locust = shutil.which("locust", path=str(Path(sys.executable).parent))
    if locust is None:
        raise SystemExit("locust is not installed: pip install -c constraints.txt -e '.[bench]'")

    OUT.mkdir(exist_ok=True)
    data = OUT / "load-data"
    keys, ingest_key = prepare(data, args.users)
    key_file = OUT / "load-keys.json"
    key_file.write_text(json.dumps(keys))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    names = {s.name for s in SETTINGS}
    raised = {name: value for name, value in GENEROUS.items() if name in names}
    env.update({f"MDR_{name.upper()}": value for name, value in raised.items()})
    env["MDR_LOG_LEVEL"] = "warning"
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()}")
    print(f"limits raised for the run: {raised or 'none (this build has no such settings)'}")

    server = Server(data, env)
    try:
        preload(server.url, ingest_key, args.users)
        print(f"server {server.url}: {PRELOAD_BATCHES * PRELOAD_BATCH:,} records preloaded")
        ingest = IngestLoop(server.url, ingest_key, args.batch, args.users)
        ingest.start()
        prefix = OUT / "load"
        command = [
            locust,
            "-f",
            str(HERE / "load_locust.py"),
            "--headless",
            "--users",
            str(args.users),
            "--spawn-rate",
            str(max(args.users // 2, 1)),
            "--run-time",
            f"{args.seconds}s",
            "--stop-timeout",
            "10",
            "--host",
            server.url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]
        locust_env = {**os.environ, "MDR_LOAD_KEYS": str(key_file)}
        cpu_before, wall_before = sum(server.ps.cpu_times()[:2]), time.perf_counter()
        run = subprocess.run(command, env=locust_env, timeout=args.seconds + 120, check=False)
        cpu = sum(server.ps.cpu_times()[:2]) - cpu_before
        wall = time.perf_counter() - wall_before
        ingest_seconds = ingest.stop()
        print(f"load average after: {os.getloadavg()}")
        errors = report(prefix, ingest, ingest_seconds)
        print(f"{errors} errors" if errors else "0 errors")
        print(f"API process CPU during the run: {cpu:.0f} s in {wall:.0f} s ({cpu / wall:.2f})")
        hwm = server.vm_hwm_mib()
        print(
            f"API process peak RSS: {server.peak_rss / 2**20:.0f} MiB sampled every 0.2 s"
            + (f", VmHWM {hwm:.0f} MiB" if hwm else "")
        )
        if run.returncode not in (0, 1):  # 1: locust saw failures, printed above
            raise SystemExit(f"locust exited {run.returncode}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
