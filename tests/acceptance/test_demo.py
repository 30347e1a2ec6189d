"""`mdr demo` (what `make run` runs): its printed key and curl line work against the real server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

from tests.acceptance.helpers import MDR, free_port


def test_demo_lines_create_a_report_over_demo_data_and_download_it(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            *MDR,
            "demo",
            "--records",
            "20000",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.strip().startswith("until"):
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}" in output, output
        key = next(line.split(": ", 1)[1].strip() for line in lines if "demo key" in line)
        curl_line = next(x.strip() for x in lines if x.strip().startswith("curl"))
        assert key in curl_line
        done = subprocess.run(
            shlex.split(curl_line), capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        created = json.loads(done.stdout)
        assert created["status"] == 1 and created["directions"] == ["outbound"]
        download_line = next(x.strip() for x in lines if x.strip().startswith("until"))
        fetched = subprocess.run(
            ["bash", "-c", download_line],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "saved mdr-demo-report.csv" in fetched.stdout, fetched.stderr
        report = (tmp_path / "mdr-demo-report.csv").read_text()
        header, *rows = report.splitlines()
        assert header.startswith("id,created_at,sent_at,completed_at,direction,")
        assert len(rows) > 100  # the demo lake holds records in the demo window
        assert all(",outbound," in row for row in rows[:50])
    finally:
        server.terminate()
        server.wait(timeout=30)
        assert server.stdout is not None
        server.stdout.close()
        log.close()
