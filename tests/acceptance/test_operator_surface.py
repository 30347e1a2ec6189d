"""The operator's view of real processes: JSON log lines, Ctrl-C, `mdr worker
--metrics-port`, and the README's SDK snippet run against `mdr serve` (issue 7)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.helpers import MDR, free_port, reports_key, run_mdr, running_server

README = Path(__file__).resolve().parents[2] / "README.md"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    return {**env, **extra}


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([*MDR, *args], stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_ctrl_c_on_serve_exits_0_with_json_lines_and_no_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_mdr("admin", "create-account", "A", "--id", "acct-01", data_dir=data).returncode == 0
    key = reports_key(data, "acct-01")
    port = free_port()
    stdout, stderr = tmp_path / "out.txt", tmp_path / "err.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        server = subprocess.Popen(
            [*MDR, "serve", "--port", str(port), "--data-dir", str(data)],
            stdout=out,
            stderr=err,
            env=_env(MDR_LOG_FORMAT="json"),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/healthz", server, stderr)
        listed = httpx.get(
            f"{url}/reporting/mdr_requests", headers={"Authorization": f"Bearer {key}"}
        )
        assert listed.status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    errors = stderr.read_text()
    assert server.returncode == 0, errors
    assert "Aborted" not in errors
    assert "0 build(s) handed back" in errors
    assert key not in errors and key not in stdout.read_text()
    lines = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    calls = [line for line in lines if line["logger"] == "mdr.http"]
    listed_line = next(c for c in calls if c["route"] == "/reporting/mdr_requests")
    assert listed_line["status"] == 200
    assert listed_line["account"] == "acct-01"
    assert listed_line["method"] == "GET"
    assert listed_line["ms"] >= 0
    # uvicorn's own access line is replaced, not printed beside ours
    assert not any(line["logger"] == "uvicorn.access" for line in lines)
    assert '"GET /reporting/mdr_requests HTTP/1.1"' not in errors
    other = [line for line in errors.splitlines() if line and not line.startswith("{")]
    assert other == ["mdr stopped (SIGINT): 0 build(s) handed back to the queue"], errors


def test_worker_serves_metrics_health_and_readiness(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_mdr("migrate", data_dir=data).returncode == 0
    port = free_port()
    log = tmp_path / "worker.log"
    worker = _start(["worker", "--metrics-port", str(port), "--data-dir", str(data)], _env(), log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/healthz", worker, log)
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}
        scraped = httpx.get(f"{url}/metrics")
        assert scraped.status_code == 200
        names = {f.name for f in text_string_to_metric_families(scraped.text)}
        assert {"mdr_builds", "mdr_queue_depth", "mdr_lake_rows"} <= names
        assert "mdr_worker_heartbeat_timestamp_seconds" in names
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    text = log.read_text()
    assert worker.returncode == 0, text
    assert f"metrics, health and readiness on http://127.0.0.1:{port}" in text
    assert "mdr worker stopped: 0 build(s) handed back to the queue" in text


def _readme_sdk_snippet() -> str:
    found = re.search(r"<!-- sdk-example -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert found, "the README has no SDK example"
    return found.group(1)


def test_the_readme_sdk_snippet_runs_against_mdr_serve(tmp_path: Path) -> None:
    snippet = _readme_sdk_snippet()
    assert len([line for line in snippet.splitlines() if line.strip()]) <= 5
    assert 'base_url="http://127.0.0.1:8000/v2"' in snippet
    data = tmp_path / "data"
    assert run_mdr("admin", "create-account", "A", "--id", "acct-01", data_dir=data).returncode == 0
    key = reports_key(data, "acct-01")
    with running_server(data) as url:
        script = snippet.replace("http://127.0.0.1:8000", url)
        ran = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env=_env(MDR_API_KEY=key),
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        # the snippet prints the new request's status and id
        assert ran.stdout.split()[0] in {"PENDING", "COMPLETE"}, ran.stdout
        listed = httpx.get(
            f"{url}/reporting/mdr_requests", headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert len(listed) == 1
        # without /v2 the SDK's paths miss the service: what the README warns about
        wrong = script.replace(f'base_url="{url}/v2"', f'base_url="{url}"')
        missed = subprocess.run(
            [sys.executable, "-c", wrong],
            capture_output=True,
            text=True,
            env=_env(MDR_API_KEY=key),
            timeout=120,
            check=False,
        )
        assert missed.returncode != 0 and "NotFoundError" in missed.stderr


def test_serve_counts_the_builds_of_its_worker_process(tmp_path: Path) -> None:
    """On the embedded default the worker runs in a child process of `mdr serve`: its
    builds and heartbeat still show in the server's /metrics and /readyz."""
    data = tmp_path / "data"
    assert run_mdr("admin", "create-account", "A", "--id", "acct-01", data_dir=data).returncode == 0
    key = reports_key(data, "acct-01")
    auth = {"Authorization": f"Bearer {key}"}
    with running_server(data) as url:
        made = httpx.post(
            f"{url}/reporting/mdr_requests",
            headers=auth,
            json={"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-02T00:00:00Z"},
        )
        assert made.status_code == 200, made.text
        status_url = f"{url}/reporting/mdr_requests/{made.json()['id']}"
        deadline = time.monotonic() + 60
        while httpx.get(status_url, headers=auth).json()["status"] != 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        families = {
            f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
        }
        builds = {
            s.labels["outcome"]: s.value
            for s in families["mdr_builds"].samples
            if s.name == "mdr_builds_total"
        }
        assert builds.get("complete") == 1, builds
        heartbeat = families["mdr_worker_heartbeat_timestamp_seconds"].samples[0].value
        assert time.time() - 120 < heartbeat <= time.time() + 1
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200, ready.text
