"""Logs, metrics and health through the app in-process (issue 7, items 2 and 3).

``/metrics`` is read with ``prometheus_client``'s own parser; a real worker (threads,
the package's FakeBuilder) builds reports, and real ingest calls write the lake.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mdr_reporting.api import Services, create_app
from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.files import open_file_store
from mdr_reporting.lake import open_lake
from mdr_reporting.observability import WEBHOOK_DELIVERIES
from mdr_reporting.observability.logs import JsonFormatter
from mdr_reporting.settings import Settings
from mdr_reporting.worker import Background
from mdr_reporting.worker.testing import FakeBuilder
from tests.records import ndjson, record

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@dataclasses.dataclass
class Served:
    client: TestClient
    services: Services
    catalog: Catalog
    background: Background

    def key(self, account: str = "acct-a", scope: str = "reports") -> dict[str, str]:
        if self.catalog.get_account(account) is None:
            self.catalog.create_account(account.title(), account_id=account)
        secret = self.catalog.create_key(account, KeyScope(scope)).secret
        return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def served(settings: Settings, catalog: Catalog) -> Iterator[Served]:
    lake = open_lake(settings.lake_url, settings)
    services = Services(settings=settings, catalog=catalog, clock=catalog.clock, lake=lake)
    files = open_file_store(settings.files_url, settings)
    background = Background(settings, catalog, files, FakeBuilder(rows=5))
    assert background.worker is not None
    worker = background.worker
    worker.poll_interval = 0.02
    services.observability.worker_alive = lambda: worker.alive_at
    background.start()
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            yield Served(client, services, catalog, background)
    finally:
        background.stop()


def wait_complete(served: Served, request_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        item = served.client.get(f"/reporting/mdr_requests/{request_id}", headers=headers).json()
        if item["status"] != 1:
            return dict(item)
        assert time.monotonic() < deadline, item
        time.sleep(0.02)


def test_metrics_move_with_calls_builds_and_ingest(served: Served) -> None:
    reports = served.key()
    ingest = served.key(scope="ingest")
    before = scrape(served.client)
    now = served.catalog.clock()
    body = {
        "start_time": (now - timedelta(days=3)).isoformat(),
        "end_time": (now - timedelta(days=1)).isoformat(),
    }
    created = served.client.post("/reporting/mdr_requests", json=body, headers=reports).json()
    done = wait_complete(served, created["id"], reports)
    assert done["status"] == 2
    stored = served.client.post(
        "/ingest/mdrs",
        content=ndjson([record(i) for i in range(7)]),
        headers={**ingest, "Content-Type": "application/x-ndjson"},
    )
    assert stored.status_code == 200, stored.text
    served.client.get("/reporting/mdr_requests/nope", headers=reports)
    served.services.observability.shared.lake_ttl = 0  # the lake's figures read afresh
    after = scrape(served.client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/reporting/mdr_requests/{request_id}"
    assert moved("mdr_http_requests_total", method="POST", route="/reporting/mdr_requests",
                 status="200") == 1  # fmt: skip
    assert moved("mdr_http_requests_total", method="GET", route=route, status="200") >= 1
    assert moved("mdr_http_requests_total", method="GET", route=route, status="404") == 1
    assert moved("mdr_http_request_duration_seconds_count", method="GET", route=route) >= 2
    assert moved("mdr_builds_total", outcome="complete") == 1
    assert moved("mdr_build_duration_seconds_count", outcome="complete") == 1
    assert moved("mdr_build_rows_total") == 5
    assert moved("mdr_ingest_rows_total") == 7
    assert moved("mdr_ingest_batches_total", outcome="stored") == 1
    assert value(after, "mdr_queue_depth", state="pending") == 0
    assert value(after, "mdr_queue_depth", state="building") == 0
    assert value(after, "mdr_lake_rows") == 7
    assert value(after, "mdr_lake_files") >= 1
    assert value(after, "mdr_lake_bytes") > 0


def test_webhook_deliveries_counter_is_exposed(served: Served) -> None:
    before = value(scrape(served.client), "mdr_webhook_deliveries_total", outcome="delivered")
    WEBHOOK_DELIVERIES.labels("delivered").inc()
    after = value(scrape(served.client), "mdr_webhook_deliveries_total", outcome="delivered")
    assert after == before + 1


def test_queue_depth_counts_pending_requests(served: Served) -> None:
    served.background.stop()  # nothing builds: what is created stays Pending
    reports = served.key()
    now = served.catalog.clock()
    body = {
        "start_time": (now - timedelta(days=3)).isoformat(),
        "end_time": (now - timedelta(days=1)).isoformat(),
    }
    for _ in range(3):
        assert served.client.post("/reporting/mdr_requests", json=body, headers=reports).is_success
    samples = scrape(served.client)
    assert value(samples, "mdr_queue_depth", state="pending") == 3
    assert value(samples, "mdr_queue_depth", state="building") == 0


def test_health_and_readiness_need_no_key(served: Served) -> None:
    assert served.client.get("/healthz").json() == {"status": "ok"}
    ready = served.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready"}


def test_readiness_names_a_silent_worker(served: Served) -> None:
    served.services.observability.worker_alive = lambda: time.monotonic() - 3600
    ready = served.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reasons"] == ["report worker silent for 3600 s"]


def test_readiness_names_an_unreachable_catalog(served: Served, tmp_path: Path) -> None:
    observability = served.services.observability
    catalog = observability.catalog
    assert catalog is not None
    # a catalog whose database is gone or never answers
    if catalog.engine.dialect.name == "sqlite":
        observability.catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")
        observability.catalog.engine.dispose()
        (tmp_path / "catalog.db").unlink()
        (tmp_path / "catalog.db").mkdir()  # not a database: every query fails
    else:
        observability.catalog = Catalog(
            "postgresql://postgres@127.0.0.1:5432/mdr_observe_no_such_db"
        )
    try:
        ready = served.client.get("/readyz")
    finally:
        observability.catalog.close()
    assert ready.status_code == 503
    [reason] = ready.json()["reasons"]
    assert reason.startswith("catalog unreachable: ")


def test_metrics_with_admin_auth(settings: Settings, catalog: Catalog) -> None:
    services = Services(
        settings=dataclasses.replace(settings, metrics_auth="admin"), catalog=catalog
    )
    catalog.create_account("A", account_id="acct-a")
    admin = catalog.create_key("acct-a", KeyScope.ADMIN).secret
    reports = catalog.create_key("acct-a", KeyScope.REPORTS).secret
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        assert client.get("/metrics").status_code == 401
        assert (
            client.get("/metrics", headers={"Authorization": f"Bearer {reports}"}).status_code
            == 403
        )
        scrape(client, Authorization=f"Bearer {admin}")
        assert client.get("/healthz").status_code == 200  # health stays open


def test_one_access_line_per_call_with_its_fields(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    headers = served.key("acct-log")
    with caplog.at_level(logging.INFO, logger="mdr.http"):
        response = served.client.get(
            "/reporting/mdr_requests/abc-123", headers={**headers, "X-Request-Id": "trace-42"}
        )
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "trace-42"
    [line] = [r for r in caplog.records if r.name == "mdr.http"]
    fields = line.mdr  # type: ignore[attr-defined]
    assert fields["method"] == "GET"
    assert fields["route"] == "/reporting/mdr_requests/{request_id}"
    assert fields["status"] == 404
    assert fields["account"] == "acct-log"
    assert fields["request_id"] == "trace-42"
    assert fields["mdr_request"] == "abc-123"
    assert fields["ms"] >= 0
    text = line.getMessage()
    assert text.startswith("GET /reporting/mdr_requests/{request_id} 404 ")
    assert "account=acct-log request_id=trace-42 mdr_request=abc-123" in text
    assert "Bearer" not in text


def test_a_bad_request_id_header_is_replaced(served: Served) -> None:
    response = served.client.get("/healthz", headers={"X-Request-Id": "a b\tc" * 30})
    assert len(response.headers["x-request-id"]) == 16


def test_build_line_has_the_figures(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    reports = served.key()
    now = served.catalog.clock()
    body = {
        "start_time": (now - timedelta(days=3)).isoformat(),
        "end_time": (now - timedelta(days=1)).isoformat(),
    }
    with caplog.at_level(logging.INFO, logger="mdr.build"):
        created = served.client.post("/reporting/mdr_requests", json=body, headers=reports)
        wait_complete(served, created.json()["id"], reports)
        deadline = time.monotonic() + 5
        while not [r for r in caplog.records if r.name == "mdr.build"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    [line] = [r for r in caplog.records if r.name == "mdr.build"]
    fields = line.mdr  # type: ignore[attr-defined]
    assert fields["mdr_request"] == created.json()["id"]
    assert fields["outcome"] == "complete"
    assert (fields["accounts"], fields["days"], fields["rows"]) == (1, 2, 5)
    assert fields["bytes"] > 0
    assert fields["seconds"] >= 0
    assert "rows_per_s" in fields
    formatted = json.loads(JsonFormatter().format(line))
    assert formatted["logger"] == "mdr.build"
    assert formatted["outcome"] == "complete"
    assert formatted["message"].startswith(f"build {created.json()['id']} complete: accounts=1")
