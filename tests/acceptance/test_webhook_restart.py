"""`mdr serve` killed with SIGKILL while a webhook waits for its retry delivers it after a
restart: same webhook-id, signed with the same key (kept in the data folder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.acceptance.helpers import MDR, free_port, reports_key, run_mdr
from tests.webhook_receiver import receiver, signature_valid

ENV = {
    "MDR_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver listens on 127.0.0.1
    "MDR_WEBHOOK_RETRY_BASE_SECONDS": "4",  # the first retry comes 2 to 4 s later
}


def _serve(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")} | ENV
    with log.open("ab") as out:
        server = subprocess.Popen(
            [*MDR, "serve", "--port", str(port), "--data-dir", str(data)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _wait(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_webhook_waiting_for_its_retry_survives_a_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert (
        run_mdr("admin", "create-account", "Acme", "--id", "acct-01", data_dir=data).returncode == 0
    )
    key = {"Authorization": f"Bearer {reports_key(data, 'acct-01')}"}
    log = tmp_path / "serve.log"
    with receiver(default=500) as target:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = _serve(data, port, log)
        try:
            created = httpx.post(
                f"{url}/reporting/mdr_requests",
                json={
                    "start_time": "2026-01-01T00:00:00Z",
                    "end_time": "2026-01-02T00:00:00Z",
                    "webhook_url": target.url,
                },
                headers=key,
            )
            assert created.status_code == 200, created.text
            request_id = created.json()["id"]
            hooks = f"{url}/reporting/mdr_requests/{request_id}/webhook_deliveries"

            def first_attempt_recorded() -> bool:
                listed = httpx.get(hooks, headers=key).json()
                return bool(listed) and len(listed[0]["attempts"]) == 1

            _wait(first_attempt_recorded, "the first (failed) attempt")
        finally:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(30)
        assert len(target.received) == 1 and target.received[0].answered == 500
        target.default = 200  # the receiver is back
        server = _serve(data, port, log)
        try:
            _wait(lambda: any(r.answered == 200 for r in target.received), "the retry")
            public_key = httpx.get(f"{url}/v1/webhook_public_key").json()["public_key"]
            listed = httpx.get(hooks, headers=key).json()
        finally:
            server.terminate()
            server.wait(30)
    first, last = target.received[0], target.received[-1]
    assert last.headers["webhook-id"] == first.headers["webhook-id"] == listed[0]["id"]
    assert signature_valid(public_key, first) and signature_valid(public_key, last)
    body = json.loads(last.body)
    assert body["id"] == request_id and body["status"] == 2
    assert listed[0]["state"] == "delivered"
    assert [a["http_status"] for a in listed[0]["attempts"]] == [500, 200]
