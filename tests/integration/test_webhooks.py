"""Completion webhooks against a real HTTP receiver on 127.0.0.1, on every catalog backend.

The API runs in-process; deliveries are made by the real deliverer (httpx over a
socket) and the tests drive its clock: the catalog's fake clock decides when a retry
is due, so backoff is exercised without waiting for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from mdr_reporting.api import Services, create_app
from mdr_reporting.api.schemas import V1Request, V1WebhookDelivery, V2WebhookDeliveries
from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.settings import Settings, load_settings
from mdr_reporting.webhooks.deliverer import Deliverer, webhook_deliverer
from tests.conftest import FakeClock
from tests.webhook_receiver import receiver, signature_valid

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"
BODY = {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-08T00:00:00Z"}


def hook_settings(tmp_path: Path, catalog_url: str, **extra: Any) -> Settings:
    return load_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "catalog_url": catalog_url,
            "signing_secret": "test-secret-0123456789",
            "max_pending_per_account": 0,
            "rate_limit_burst": 1_000_000,
            "create_rate_limit_burst": 1_000_000,
            "webhook_allow_private": True,  # the receiver is on 127.0.0.1
            "webhook_timeout_seconds": 2,
            **extra,
        },
        environ={},
    )


@dataclass
class Hooks:
    client: TestClient
    catalog: Catalog
    clock: FakeClock
    queue: JobQueue
    deliverer: Deliverer
    headers: dict[str, str]

    def create(self, url: str, surface: str = "v1") -> str:
        path = V1 if surface == "v1" else V2
        response = self.client.post(path, json={**BODY, "webhook_url": url}, headers=self.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return str(body["id"] if surface == "v1" else body["data"]["id"])

    def complete(self) -> str:
        claim = self.queue.claim("w")
        assert claim is not None
        key = f"{claim.state.id}/file.csv"
        assert self.queue.complete(claim.state.id, "w", file_key=key, record_count=3, size_bytes=10)
        return claim.state.id

    def deliveries(self, request_id: str) -> list[dict[str, Any]]:
        response = self.client.get(f"{V1}/{request_id}/webhook_deliveries", headers=self.headers)
        assert response.status_code == 200, response.text
        got = response.json()
        for item in got:
            V1WebhookDelivery.model_validate(item)
        return list(got)

    def public_key(self) -> str:
        response = self.client.get("/v1/webhook_public_key")  # no key needed
        assert response.status_code == 200, response.text
        return str(response.json()["public_key"])


def make_hooks(
    tmp_path: Path, catalog: Catalog, clock: FakeClock, *, max_attempts: int = 3, **extra: Any
) -> Iterator[Hooks]:
    settings = hook_settings(tmp_path, catalog.url, **extra)
    services = Services(settings=settings, catalog=catalog, clock=clock)
    lease, retention = timedelta(seconds=60), timedelta(days=30)
    queue = JobQueue(catalog, lease=lease, max_attempts=max_attempts, retention=retention)
    deliverer = webhook_deliverer(settings, catalog, owner="test")
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        catalog.create_account("Acct A", account_id="acct-a")
        secret = catalog.create_key("acct-a", KeyScope.REPORTS).secret
        yield Hooks(client, catalog, clock, queue, deliverer, {"Authorization": f"Bearer {secret}"})


@pytest.fixture
def hooks(tmp_path: Path, catalog: Catalog, clock: FakeClock) -> Iterator[Hooks]:
    yield from make_hooks(tmp_path, catalog, clock, max_attempts=1)


def test_complete_failed_and_expired_are_posted_signed_in_the_creating_surfaces_view(
    hooks: Hooks,
) -> None:
    key = hooks.public_key()
    with receiver() as target:
        done_id = hooks.create(target.url)
        hooks.complete()
        assert hooks.deliverer.run_due() == 1
        failed_id = hooks.create(target.url, surface="v2")
        claim = hooks.queue.claim("w")
        assert claim is not None and claim.state.id == failed_id
        hooks.queue.fail_attempt(failed_id, "w", "boom", retry_after=timedelta(seconds=1))
        assert hooks.deliverer.run_due() == 1
        hooks.clock.advance(days=31)
        assert hooks.queue.expire_due() == [(done_id, f"{done_id}/file.csv")]
        assert hooks.deliverer.run_due() == 1
        got = target.wait_for(3)

    assert all(signature_valid(key, item) for item in got)
    assert all(item.path == "/hooks/mdr?token=s3cret" for item in got)
    complete, failed, expired = (json.loads(item.body) for item in got)
    V1Request.model_validate(complete)
    assert complete["id"] == done_id and complete["status"] == 2
    assert complete["report_url"].startswith("http://127.0.0.1:8000/reports/")
    assert complete["record_count"] == 3 and complete["queue_position"] is None
    assert failed["data"]["id"] == failed_id and failed["data"]["status"] == "FAILED"
    assert failed["data"]["error"] == "boom"
    assert expired["id"] == done_id and expired["status"] == 4 and expired["report_url"] is None
    # one webhook-id per delivery, the one the deliveries route shows
    listed = hooks.deliveries(done_id)
    assert [d["status"] for d in listed] == [2, 4]
    assert [d["id"] for d in listed] == [got[0].headers["webhook-id"], got[2].headers["webhook-id"]]
    assert all(d["state"] == "delivered" and d["next_attempt_at"] is None for d in listed)
    assert listed[0]["attempts"][0]["http_status"] == 200
    v2 = hooks.client.get(f"{V2}/{failed_id}/webhook_deliveries", headers=hooks.headers)
    assert v2.status_code == 200
    assert V2WebhookDeliveries.model_validate(v2.json()).data[0].status == "FAILED"
    # a signature over another body does not verify
    forged = got[0].__class__(got[0].path, got[0].headers, got[0].body + b" ", 200)
    assert not signature_valid(key, forged)


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt_with_one_webhook_id(
    hooks: Hooks,
) -> None:
    with receiver([500, 503]) as target:
        request_id = hooks.create(target.url)
        hooks.complete()
        assert hooks.deliverer.run_due() == 1
        first = hooks.deliveries(request_id)[0]
        assert first["state"] == "pending" and first["attempts"][0]["http_status"] == 500
        assert hooks.deliverer.run_due() == 0  # not due before its backoff
        hooks.clock.advance(seconds=5)  # the first wait is 2.5 to 5 s
        assert hooks.deliverer.run_due() == 1
        hooks.clock.advance(seconds=10)
        assert hooks.deliverer.run_due() == 1
        got = target.wait_for(3)
    assert [g.answered for g in got] == [500, 503, 200]
    assert len({g.headers["webhook-id"] for g in got}) == 1
    listed = hooks.deliveries(request_id)[0]
    assert listed["state"] == "delivered"
    attempts = listed["attempts"]
    assert [a["http_status"] for a in attempts] == [500, 503, 200]
    assert attempts[0]["next_attempt_at"] is not None and attempts[2]["next_attempt_at"] is None
    assert all(a["duration_ms"] is not None for a in attempts)


def test_redirects_are_not_followed_and_count_as_a_failed_attempt(hooks: Hooks) -> None:
    with receiver() as elsewhere, receiver([302], location=elsewhere.url) as target:
        request_id = hooks.create(target.url)
        hooks.complete()
        assert hooks.deliverer.run_due() == 1
        assert len(target.wait_for(1)) == 1
        assert elsewhere.received == []
    attempt = hooks.deliveries(request_id)[0]["attempts"][0]
    assert attempt["http_status"] == 302 and attempt["error"] == "redirects are not followed"
    assert attempt["next_attempt_at"] is not None


def test_timeouts_and_refused_connections_are_retried_then_given_up_after_the_window(
    tmp_path: Path, catalog: Catalog, clock: FakeClock
) -> None:
    for hooks in make_hooks(
        tmp_path, catalog, clock, webhook_timeout_seconds=0.3, webhook_retry_hours=0.005
    ):
        with receiver(delay=1.0) as slow:
            request_id = hooks.create(slow.url)
            hooks.complete()
            assert hooks.deliverer.run_due() == 1
        listed = hooks.deliveries(request_id)[0]
        assert listed["attempts"][0]["error"] == "no answer within 0.3 s"
        assert listed["state"] == "pending"
        clock.advance(seconds=14)  # the window is 18 s: the next wait (5 to 10 s) ends past it
        assert hooks.deliverer.run_due() == 1  # the receiver is gone: connection refused
        listed = hooks.deliveries(request_id)[0]
        assert "could not connect" in listed["attempts"][1]["error"]
        assert listed["state"] == "failed" and listed["attempts"][1]["next_attempt_at"] is None


def test_a_private_target_is_refused_at_delivery_when_not_allowed(
    tmp_path: Path, catalog: Catalog, clock: FakeClock
) -> None:
    for hooks in make_hooks(tmp_path, catalog, clock):
        with receiver() as target:
            request_id = hooks.create(target.url)  # allowed when created
            hooks.complete()
            strict = webhook_deliverer(
                hook_settings(tmp_path, catalog.url, webhook_allow_private=False),
                catalog,
                owner="strict",
            )
            assert strict.run_due() == 1
            assert target.received == []
        listed = hooks.deliveries(request_id)[0]
        assert listed["state"] == "failed"
        assert "127.0.0.1 is a loopback address" in listed["attempts"][0]["error"]


def test_a_deleted_request_is_not_announced(hooks: Hooks) -> None:
    with receiver() as target:
        request_id = hooks.create(target.url)
        hooks.complete()
        deleted = hooks.client.delete(f"{V1}/{request_id}", headers=hooks.headers)
        assert deleted.status_code == 200
        assert hooks.deliverer.run_due() == 1
        assert target.received == []
    gone = hooks.client.get(f"{V1}/{request_id}/webhook_deliveries", headers=hooks.headers)
    assert gone.status_code == 404


def test_deliveries_of_another_accounts_request_are_a_404(hooks: Hooks) -> None:
    request_id = hooks.create("https://hooks.example/x")
    hooks.catalog.create_account("Acct B", account_id="acct-b")
    other = hooks.catalog.create_key("acct-b", KeyScope.REPORTS).secret
    response = hooks.client.get(
        f"{V1}/{request_id}/webhook_deliveries", headers={"Authorization": f"Bearer {other}"}
    )
    assert response.status_code == 404
    assert hooks.client.get(f"{V1}/{request_id}/webhook_deliveries").status_code == 401
    assert hooks.deliveries(request_id) == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/", "a cloud metadata address"),
        ("http://10.0.0.1/", "a private address"),
        ("http://127.0.0.1:9/x", "a loopback address"),
        ("http://localhost/x", "a loopback address"),
        ("http://[::ffff:192.168.1.1]/", "a private address"),
        ("http://2130706433/", "a loopback address"),  # 127.0.0.1 as one number
        ("http://169.254.10.1/", "a link-local address"),
        ("http://0.0.0.0/", "an unspecified address"),
        ("http://224.0.0.1/", "a multicast address"),
        ("http://100.64.0.1/", "not a public address"),
    ],
)
def test_a_webhook_url_on_a_non_public_address_is_a_400_naming_the_field(
    api: Any, url: str, reason: str
) -> None:
    response = api.client.post(V1, json={**BODY, "webhook_url": url}, headers=api.headers())
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["source"]["pointer"] == "/webhook_url"
    assert reason in error["detail"] and "public internet addresses" in error["detail"]


def test_metadata_stays_refused_when_private_targets_are_allowed(hooks: Hooks) -> None:
    for url in ("http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:80/"):
        response = hooks.client.post(V1, json={**BODY, "webhook_url": url}, headers=hooks.headers)
        assert response.status_code == 400, url
    assert hooks.create("http://10.0.0.1/hook")  # private is allowed by the setting


def test_a_name_that_does_not_resolve_yet_is_accepted_and_checked_at_delivery(
    api: Any,
) -> None:
    response = api.client.post(
        V1, json={**BODY, "webhook_url": "https://hooks.example/x"}, headers=api.headers()
    )
    assert response.status_code == 200, response.text


def test_the_public_key_is_made_once_into_the_data_folder_owner_only(hooks: Hooks) -> None:
    first = hooks.public_key()
    body = hooks.client.get("/v1/webhook_public_key").json()
    assert body["algorithm"] == "ed25519" and body["public_key"] == first
    assert body["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert body["signed_content"] == "{webhook-timestamp}|{body}"


def _readme_receiver() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- webhook-receiver -->\n```python\n", 1)[1].split("```", 1)[0]
    assert len(block.strip().splitlines()) <= 22  # short enough to paste
    return block


def test_the_readme_receiver_verifies_a_real_webhook_and_refuses_a_forged_one(
    hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading
    from http.server import HTTPServer

    source = _readme_receiver()
    source = source.replace('PUBLIC_KEY = "..."', f'PUBLIC_KEY = "{hooks.public_key()}"')
    source = source.replace('HTTPServer(("", 8080), Hook).serve_forever()', "")
    scope: dict[str, Any] = {}
    exec(compile(source, "README receiver", "exec"), scope)
    server = HTTPServer(("127.0.0.1", 0), scope["Hook"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        request_id = hooks.create(url)
        hooks.complete()
        assert hooks.deliverer.run_due() == 1
        listed = hooks.deliveries(request_id)[0]
        assert listed["state"] == "delivered" and listed["attempts"][0]["http_status"] == 204
        assert f"{listed['id']} 2" in capsys.readouterr().out
        # a forged signature: the receiver raises and gives no answer, so no 2xx
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                url,
                content=b'{"status": 2}',
                headers={"webhook-timestamp": "1", "webhook-signature": "AAAA", "webhook-id": "x"},
            )
    finally:
        server.shutdown()
        server.server_close()
