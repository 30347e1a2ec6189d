"""Status reads under load: 64 connections GET one request on one `mdr serve` while reports build.

    .venv/bin/python bench/status_load.py [--connections 64] [--seconds 30] [--records 1000000]
        [--surface v1|v2] [--compare-with DIR] [--serve-flag FLAG ...] [--workdir DIR]

Needs locust (``make bench``). Steps:

1. A data folder of ``--records`` generated MDRs (20 accounts under one parent, 30 days,
   the one bench/report_api.py makes, cached in ``--workdir``) and a reports key of the parent.
2. ``mdr serve`` (the embedded default: SQLite catalog, local lake and files, the worker
   started by serve) on a free port; per-key rate limits raised so that the limiter
   still runs on every call but never refuses one.
3. A small report is created and waited for: its status (Complete, with a signed
   ``report_url``) is the one read under load.
4. A feeder keeps a big report building the whole time: every account, 30 days
   (``--records`` rows), posted again as soon as the previous one completes.
5. locust, headless: ``--connections`` users with no think time, each one connection,
   GET ``/reporting/mdr_requests/{id}`` (``--surface v2``: the v2 legacy twin) back to
   back for ``--seconds``.
6. Prints requests/s, p50/p99 (locust's), errors, the API process's CPU per status read
   (utime+stime from /proc/<pid>/stat before and after), the CPU of the rest of the
   server's process tree (the report worker) and of locust, and how much of the run
   had a report building.

``--compare-with DIR`` runs steps 2-6 first against another checkout's server (e.g.
``git archive 298b426 | tar -x -C DIR``: the same venv, ``PYTHONPATH=DIR``), then
against this one: before and after in one run, on the same data.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_api import DAYS, START, V1, free_port, prepared, wait_healthy, window

V2 = "/v2/legacy/reporting/batch_detail_records/messaging"

FIRST = datetime.combine(START, datetime.min.time(), UTC)  # the data's first day, at 00:00 UTC

HERE = Path(__file__).resolve().parent
MDR = [sys.executable, "-m", "mdr_reporting"]
TICKS = os.sysconf("SC_CLK_TCK")
GENEROUS = {  # the limiter still takes a token per call; it never refuses one here
    "MDR_RATE_LIMIT_RPS": "1000000",
    "MDR_RATE_LIMIT_BURST": "10000000",
    "MDR_CREATE_RATE_LIMIT_RPS": "1000000",
    "MDR_CREATE_RATE_LIMIT_BURST": "10000000",
}


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each of its live descendants."""
    pids = [pid]
    with contextlib.suppress(psutil.Error):
        pids += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    return {p: cpu_seconds(p) for p in pids}


class Server:
    def __init__(
        self, data: Path, extra_env: dict[str, str], root: Path | None, flags: list[str]
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
        env.update({"MDR_LOG_LEVEL": "warning", **GENEROUS, **extra_env})
        if root is not None:  # another checkout's server (--compare-with)
            env["PYTHONPATH"] = str(root)
        self.log = (data / "status-serve.log").open("w")
        self.process = subprocess.Popen(
            [*MDR, "serve", "--port", str(self.port), "--data-dir", str(data), *flags],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
        wait_healthy(self.url, self.process, data / "status-serve.log")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def wait_done(client: httpx.Client, request_id: str, pause: float) -> dict[str, Any]:
    while True:
        item: dict[str, Any] = client.get(f"{V1}/{request_id}").json()
        if item["status"] != 1:
            return item
        time.sleep(pause)


class Feeder:
    """Keeps one big report building: posts the next as soon as the previous one is done."""

    def __init__(self, url: str, key: str) -> None:
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600
        )
        self.built: list[tuple[int, float]] = []  # (rows, seconds) of each finished build
        self.busy = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        serial = 0
        while not self._stop.is_set():
            serial += 1
            body = {
                **window(FIRST, timedelta(days=DAYS)),
                "select_all_managed_accounts": True,
                "record_types": [1, 2, 3],
                "report_name": f"status-load big {serial}",  # never a repeat of the last
            }
            started = time.perf_counter()
            created = self.client.post(V1, json=body)
            created.raise_for_status()
            item = wait_done(self.client, created.json()["id"], 0.25)
            took = time.perf_counter() - started
            self.busy += took
            if item["status"] == 2:
                self.built.append((item["record_count"], took))
            self.client.delete(f"{V1}/{item['id']}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=600)
        self.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mdr-bench-status"))
    parser.add_argument("--no-build", action="store_true", help="no report builds meanwhile")
    parser.add_argument(
        "--surface", choices=["v1", "v2"], default="v1", help="which status route is read"
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        default=None,
        help="another checkout (git archive <commit> | tar -x -C DIR): measured first, "
        "in the same run, with the same data, load and flags",
    )
    parser.add_argument(
        "--serve-flag",
        action="append",
        default=[],
        help="an extra flag of `mdr serve` for this checkout (repeatable)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="also record the server with py-spy into this file (collapsed stacks)",
    )
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)"
    )
    args = parser.parse_args()
    locust = shutil.which("locust", path=str(Path(sys.executable).parent))
    if locust is None:
        raise SystemExit("locust is not installed: make bench")
    args.workdir.mkdir(parents=True, exist_ok=True)
    data, key, _ingest_key = prepared(args.workdir, args.records)
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()}")
    runs: list[tuple[str, Path | None, list[str]]] = []
    if args.compare_with is not None:
        runs.append((f"compared checkout {args.compare_with}", args.compare_with.resolve(), []))
    this = "this checkout" + "".join(f" {f}" for f in args.serve_flag)
    runs.append((this, None, args.serve_flag))
    for label, root, flags in runs:
        print(f"--- {label}")
        measure(args, locust, data, key, root, flags)


def measure(
    args: argparse.Namespace,
    locust: str,
    data: Path,
    key: str,
    root: Path | None,
    flags: list[str],
) -> None:
    extra = dict(item.split("=", 1) for item in args.env)
    server = Server(data, extra, root, flags)
    feeder = None
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600
        ) as client:
            small = client.post(
                V1, json={**window(FIRST, timedelta(days=1)), "managed_accounts": ["acct-20"]}
            )
            small.raise_for_status()
            target = wait_done(client, small.json()["id"], 0.05)
            assert target["status"] == 2, target
        path = f"{V1 if args.surface == 'v1' else V2}/{target['id']}"
        if not args.no_build:
            feeder = Feeder(server.url, key)
            feeder.start()
            time.sleep(1.0)  # the first big build is running
        prefix = args.workdir / "status-load"
        command = [
            locust,
            "-f",
            str(HERE / "status_locust.py"),
            "--headless",
            "--users",
            str(args.connections),
            "--spawn-rate",
            str(args.connections),
            "--run-time",
            f"{args.seconds}s",
            "--stop-timeout",
            "5",
            "--host",
            server.url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]
        env = {**os.environ, "MDR_STATUS_KEY": key, "MDR_STATUS_PATH": path}
        before = tree_cpu(server.process.pid)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        spy = None
        if args.py_spy is not None:
            spy = subprocess.Popen(
                [
                    shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy",
                    "record",
                    "--pid",
                    str(server.process.pid),
                    "--subprocesses",
                    "--threads",
                    "--format",
                    "raw",
                    "--duration",
                    str(args.seconds),
                    "--output",
                    str(args.py_spy),
                ],
                stdout=subprocess.DEVNULL,
            )
        loadgen = psutil.Process(run.pid)
        loadgen_cpu = 0.0
        while run.poll() is None:
            try:
                times = loadgen.cpu_times()
                loadgen_cpu = times.user + times.system
            except psutil.Error:
                pass
            time.sleep(0.5)
        wall = time.perf_counter() - started
        after = tree_cpu(server.process.pid)
        if spy is not None:
            spy.wait(timeout=120)
    finally:
        if feeder is not None:
            feeder.stop()
        server.stop()

    with (prefix.parent / f"{prefix.name}_stats.csv").open() as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "GET status")
    count, failures = int(row["Request Count"]), int(row["Failure Count"])
    api_pids = {server.process.pid} | server_api_pids(after, server.process.pid)
    api_cpu = sum(after[p] - before.get(p, 0.0) for p in after if p in api_pids)
    rest_cpu = sum(v - before.get(p, 0.0) for p, v in after.items() if p not in api_pids)
    print(f"load average: {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(
        f"GET status ({args.surface}), {args.connections} connections, {args.seconds} s: "
        f"{count:,} requests, {failures} errors, {float(row['Requests/s']):,.0f} req/s, "
        f"p50 {row['50%']} ms, p95 {row['95%']} ms, p99 {row['99%']} ms, max "
        f"{float(row['Max Response Time']):.0f} ms"
    )
    print(
        f"API process{'es' if len(api_pids) > 1 else ''} CPU: {api_cpu:.1f} s in {wall:.0f} s = "
        f"{api_cpu * 1000 / max(count, 1):.3f} ms per status read "
        f"(includes the feeder's own polls and its report's POST)"
    )
    print(f"rest of the server's process tree (report worker): {rest_cpu:.1f} s CPU")
    print(f"locust (1 process, the load generator): {loadgen_cpu:.1f} s CPU")
    if feeder is not None:
        each = sum(r for r, _ in feeder.built) / max(len(feeder.built), 1)
        print(
            f"reports built meanwhile: {len(feeder.built)} of {each:,.0f} rows each; "
            f"a build was running for {min(feeder.busy / wall, 1.0):.0%} of the run"
        )
    if run.returncode not in (0, 1):
        raise SystemExit(f"locust exited {run.returncode}")


def server_api_pids(after: dict[int, float], main: int) -> set[int]:
    """The server's other API processes (``--api-processes``): children named so."""
    out = set()
    for pid in after:
        if pid == main:
            continue
        with contextlib.suppress(OSError):
            if "mdr-api" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                out.add(pid)
    return out


if __name__ == "__main__":
    main()
