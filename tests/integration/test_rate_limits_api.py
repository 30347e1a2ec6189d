"""Rate limits and the Pending cap through the API, on every catalog backend.

Two apps on one catalog database stand for two API processes behind a balancer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mdr_reporting.api import Services, create_app
from mdr_reporting.catalog import Catalog
from mdr_reporting.settings import Settings
from tests.conftest import Api, FakeClock
from tests.records import ndjson, record

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"
BODY = {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-08T00:00:00Z"}
LIMITS = {
    "rate_limit_rps": 1.0,
    "rate_limit_burst": 4,
    "create_rate_limit_rps": 0.5,
    "create_rate_limit_burst": 2,
    "ingest_rate_limit_rps": 1.0,
    "ingest_rate_limit_burst": 1,
}


def _app(settings: Settings, catalog: Catalog, clock: FakeClock, **changes: Any) -> TestClient:
    services = Services(
        settings=dataclasses.replace(settings, **changes), catalog=catalog, clock=clock
    )
    return TestClient(create_app(services), raise_server_exceptions=False)


@pytest.fixture
def limited(api: Api, settings: Settings, catalog: Catalog, clock: FakeClock) -> Iterator[Api]:
    with _app(settings, catalog, clock, **LIMITS) as client:
        yield dataclasses.replace(api, client=client)


def _error(response: Any) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    item: dict[str, Any] = response.json()["errors"][0]
    assert item["code"] == "rate_limited"
    return item


def test_creates_past_the_burst_are_429_with_retry_after_and_ratelimit_headers(
    limited: Api, clock: FakeClock
) -> None:
    headers = limited.headers()
    first = limited.client.post(V1, json=BODY, headers=headers)
    assert first.status_code == 200
    assert first.headers["RateLimit-Limit"] == "2"
    assert first.headers["RateLimit-Remaining"] == "1"
    assert first.headers["RateLimit-Reset"] == "2"  # one token at 0.5 a second
    assert limited.client.post(V2, json={**BODY}, headers=headers).status_code == 200
    refused = limited.client.post(V1, json=BODY, headers=headers)
    item = _error(refused)
    assert "0.5 report creates a second" in item["detail"]
    assert refused.headers["Retry-After"] == "2"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Limit"] == "2"
    # reads spend the general bucket, not the create one
    assert limited.client.get(V1, headers=headers).status_code == 200
    clock.advance(seconds=2)
    assert limited.client.post(V1, json=BODY, headers=headers).status_code == 200
    # another key of the same account has its own bucket
    assert limited.client.post(V1, json=BODY, headers=limited.headers()).status_code == 200


def test_the_general_limit_covers_reads_and_deletes(limited: Api) -> None:
    headers = limited.headers()
    answers = [limited.client.get(V1, headers=headers) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["3", "2", "1", "0", "0"]
    assert "1 API calls a second" in _error(answers[-1])["detail"]
    assert answers[-1].headers["Retry-After"] == "1"
    assert limited.client.get(f"{V1}/nope", headers=headers).status_code == 429


def test_ingest_has_its_own_limit(limited: Api) -> None:
    headers = {**limited.headers("acct-a", "ingest"), "Content-Type": "application/x-ndjson"}
    body = ndjson([record(1)])
    assert limited.client.post("/ingest/mdrs", content=body, headers=headers).status_code == 200
    refused = limited.client.post("/ingest/mdrs", content=body, headers=headers)
    assert "ingest batches" in _error(refused)["detail"]
    assert refused.headers["RateLimit-Limit"] == "1"


def test_a_limit_set_to_zero_is_off(
    api: Api, settings: Settings, catalog: Catalog, clock: FakeClock
) -> None:
    with _app(settings, catalog, clock, **{**LIMITS, "rate_limit_rps": 0.0}) as client:
        headers = api.headers()
        answers = [client.get(V1, headers=headers) for _ in range(8)]
        assert {a.status_code for a in answers} == {200}
        assert "RateLimit-Limit" not in answers[0].headers


def test_two_app_processes_on_one_catalog_share_the_limit(
    api: Api, settings: Settings, catalog_url: str, clock: FakeClock
) -> None:
    """Each app has its own Catalog object (its own connection pool), as two processes."""
    one, two = Catalog(catalog_url, clock=clock), Catalog(catalog_url, clock=clock)
    try:
        with _app(settings, one, clock, **LIMITS) as a, _app(settings, two, clock, **LIMITS) as b:
            headers = api.headers()
            assert a.post(V1, json=BODY, headers=headers).status_code == 200
            assert b.post(V1, json=BODY, headers=headers).headers["RateLimit-Remaining"] == "0"
            assert a.post(V1, json=BODY, headers=headers).status_code == 429
            assert b.post(V1, json=BODY, headers=headers).status_code == 429
    finally:
        one.close()
        two.close()


def test_the_pending_cap_is_a_429_naming_the_cap(
    api: Api, settings: Settings, catalog: Catalog, clock: FakeClock
) -> None:
    with _app(settings, catalog, clock, max_pending_per_account=2) as client:
        headers = api.headers()
        assert client.post(V1, json=BODY, headers=headers).status_code == 200
        created = client.post(V2, json=BODY, headers=headers)
        assert created.status_code == 200
        refused = client.post(V1, json=BODY, headers=headers)
        item = _error(refused)
        assert "already has 2 Pending requests" in item["detail"]
        assert int(refused.headers["Retry-After"]) > 0
        # an idempotent replay of a stored request is not a new one: no 429
        replay = {**headers, "Idempotency-Key": "k-1"}
        client.delete(f"{V2}/{created.json()['data']['id']}", headers=headers)
        assert client.post(V1, json=BODY, headers=replay).status_code == 200
        assert client.post(V1, json=BODY, headers=replay).status_code == 200
        assert client.post(V1, json=BODY, headers=headers).status_code == 429
        # a managed account's own requests count against its own cap
        child = api.headers("acct-b")
        assert client.post(V1, json=BODY, headers=child).status_code == 200
