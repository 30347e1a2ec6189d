"""Running the real `mdr` command line as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

MDR = [sys.executable, "-m", "mdr_reporting"]


def run_mdr(
    *args: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    full_env.update(env or {})
    return subprocess.run(
        [*MDR, *args, *(("--data-dir", str(data_dir)) if data_dir else ())],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


def reports_key(data_dir: Path, account: str, env: dict[str, str] | None = None) -> str:
    """A new `reports` key of ``account``, made with `mdr admin create-key --json`."""
    made = run_mdr(
        "admin",
        "create-key",
        "--account",
        account,
        "--scope",
        "reports",
        "--json",
        data_dir=data_dir,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["key"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`mdr serve` on a free port as a subprocess; yields its base URL once it answers."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MDR_")}, **(env or {})}
    log_path = data_dir.parent / f"serve-{port}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*MDR, "serve", "--port", str(port), "--data-dir", str(data_dir), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
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
                    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextlib.contextmanager
def running_worker(data_dir: Path, env: dict[str, str], *extra: str) -> Iterator[None]:
    """`mdr worker` as a subprocess until the block ends (SIGTERM, then wait)."""
    log_path = data_dir.parent / f"worker-{free_port()}.log"
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("MDR_")}, **env}
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [*MDR, "worker", "--data-dir", str(data_dir), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        try:
            yield
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert worker.returncode == 0, log_path.read_text()
