"""`mdr serve` runs the worker and sweeper; the demo's two printed lines create and download.

A subprocess serves on a free port with the package's FakeBuilder plugged in (the
real engine is wired elsewhere); the test runs the printed shell lines with bash.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.worker.testing import FakeBuilder

ROWS = 25

SERVER = """
import sys
from mdr_reporting.catalog import KeyScope
from mdr_reporting.cli.common import load
from mdr_reporting.cli.serve import DEMO_ACCOUNT, build_services, demo_lines, run_server
from mdr_reporting.worker.testing import FakeBuilder

settings = load(data_dir=sys.argv[1], port=sys.argv[2], log_level="warning")
services = build_services(settings)
services.catalog.create_account("Demo", account_id=DEMO_ACCOUNT)
key = services.catalog.create_key(DEMO_ACCOUNT, KeyScope.REPORTS).secret
ready = lambda url: print("\\n".join(demo_lines(settings, url, key)), flush=True)
run_server(settings, services, on_ready=ready, builder=FakeBuilder(rows=int(sys.argv[3])))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    command = [sys.executable, "-c", SERVER, str(tmp_path / "data"), str(_free_port()), str(ROWS)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while not any(line.startswith("then wait") for line in lines):
        assert time.monotonic() < deadline, lines
        line = process.stdout.readline()
        assert line, f"the server stopped: {lines}"
        lines.append(line.rstrip("\n"))
    lines.append(process.stdout.readline().rstrip("\n"))
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()


def test_the_demo_lines_create_a_report_and_download_it(
    tmp_path: Path, server: tuple[subprocess.Popen[str], list[str]]
) -> None:
    process, lines = server
    create_line = lines[lines.index("create a report request:") + 1].strip()
    download = lines[-1].strip()
    assert create_line.startswith("curl ")

    created = subprocess.run(
        ["bash", "-c", create_line], capture_output=True, text=True, timeout=30, check=True
    )
    request_id = json.loads(created.stdout)["id"]

    fetched = subprocess.run(
        ["bash", "-c", download],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "saved mdr-demo-report.csv" in fetched.stdout

    catalog = Catalog(f"sqlite:///{tmp_path / 'data' / 'catalog.db'}")
    try:
        state = catalog.get_request(request_id)
        assert state is not None
        assert state.status == 2
        expected = FakeBuilder(rows=ROWS).render(state)
    finally:
        catalog.close()
    assert (tmp_path / "mdr-demo-report.csv").read_bytes() == expected

    process.send_signal(signal.SIGINT)  # uvicorn re-raises it after a graceful shutdown
    process.wait(timeout=15)  # no hang: the worker and the sweeper stop with the server
