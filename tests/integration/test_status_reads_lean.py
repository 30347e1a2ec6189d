"""The lean path of a status read answers exactly what the FastAPI route answers.

Two apps over the same services: ``create_app(services)`` (the lean path answers
``GET`` of one request first) and ``create_app(services, lean_status=False)`` (the
FastAPI routes alone). Every state of a request, every auth failure and the rate
limit, on both surfaces, must give the same status, headers (in order) and body
bytes, the same ``mdr.http`` line and the same metrics, on every catalog backend.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from mdr_reporting.api import Services, create_app
from mdr_reporting.api.status_reads import StatusReads
from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.files import LinkSigner
from mdr_reporting.observability.metrics import HTTP_REQUESTS
from mdr_reporting.settings import Settings, load_settings
from tests.conftest import FakeClock

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"
SURFACES = [V1, V2]
BODY = {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-08T00:00:00Z"}


@dataclass
class Pair:
    lean: TestClient
    plain: TestClient
    services: Services
    catalog: Catalog
    clock: FakeClock
    queue: JobQueue

    def key(self, account: str, scope: str = "reports", parent: str | None = None) -> str:
        if self.catalog.get_account(account) is None:
            self.catalog.create_account(account.title(), account_id=account, parent_id=parent)
        return self.catalog.create_key(account, KeyScope(scope)).secret

    def create(self, secret: str, **fields: Any) -> str:
        response = self.plain.post(
            V1, json={**BODY, **fields}, headers={"Authorization": f"Bearer {secret}"}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])


def make_pair(settings: Settings, catalog: Catalog, clock: FakeClock) -> Iterator[Pair]:
    links = LinkSigner(settings.signing_secret, "http://mdr.test", timedelta(hours=3), clock)
    services = Services(settings=settings, catalog=catalog, clock=clock, links=links)
    queue = JobQueue(catalog, lease=timedelta(minutes=1), max_attempts=1, retention=timedelta(1))
    with (
        TestClient(create_app(services), raise_server_exceptions=False) as lean,
        TestClient(create_app(services, lean_status=False), raise_server_exceptions=False) as plain,
    ):
        yield Pair(lean, plain, services, catalog, clock, queue)


@pytest.fixture
def pair(settings: Settings, catalog: Catalog, clock: FakeClock) -> Iterator[Pair]:
    yield from make_pair(settings, catalog, clock)


@pytest.fixture
def lean_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths the lean path answered (so a comparison cannot pass by never taking it)."""
    calls: list[str] = []
    matched = StatusReads.matched

    def counted(self: StatusReads, scope: Any) -> Any:
        found = matched(self, scope)
        if found is not None:
            calls.append(scope["path"])
        return found

    monkeypatch.setattr(StatusReads, "matched", counted)
    return calls


def http_count(route: str, status: int) -> float:
    value = HTTP_REQUESTS.labels("GET", route, str(status))._value.get()
    return float(value)


def same_answer(
    pair: Pair,
    path: str,
    headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> Any:
    """GET ``path`` through both apps; assert the same answer, log line and metric."""
    headers = {"X-Request-Id": "trace-1", **headers}
    route = path.rpartition("/")[0] + "/{request_id}"
    answers = []
    for client in (pair.plain, pair.lean):
        caplog.clear()
        counts = {s: http_count(route, s) for s in (200, 401, 403, 404, 429, 500)}
        with caplog.at_level(logging.INFO, logger="mdr.http"):
            response = client.get(path, headers=headers)
        [line] = [r for r in caplog.records if r.name == "mdr.http"]
        fields = dict(line.mdr)  # type: ignore[attr-defined]
        fields.pop("ms")
        moved = {s: http_count(route, s) - n for s, n in counts.items()}
        raw = response.headers.raw
        answers.append((response.status_code, raw, response.content, fields, moved))
    plain, lean = answers
    assert lean[0] == plain[0]
    assert without_remaining(lean[1]) == without_remaining(plain[1])  # every header, in order
    # the two calls took from the same bucket, one after the other
    left = [int(v) for a in (plain, lean) for k, v in a[1] if k == b"ratelimit-remaining"]
    assert not left or left == [left[0], max(left[0] - 1, 0)]
    assert lean[2] == plain[2]  # the body, to the byte
    assert lean[3] == plain[3]  # the mdr.http line
    assert lean[4] == plain[4] == {s: float(s == plain[0]) for s in lean[4]}  # one count each
    return plain


def without_remaining(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers less the figures of the bucket, which each call moves."""
    moved = {b"ratelimit-remaining", b"ratelimit-reset"}
    return [(k, b"" if k in moved else v) for k, v in headers]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("surface", SURFACES)
def test_every_state_answers_the_same_as_the_fastapi_route(
    pair: Pair, surface: str, caplog: pytest.LogCaptureFixture, lean_calls: list[str]
) -> None:
    parent = pair.key("acct-p")
    child = pair.key("acct-c", parent="acct-p")
    other = pair.key("acct-x")
    building = pair.create(child)
    pair.clock.advance(seconds=1)  # claimed in the order created
    queued = pair.create(child)

    def check(request_id: str, secret: str, status: int) -> dict[str, Any]:
        answer = same_answer(pair, f"{surface}/{request_id}", bearer(secret), caplog)
        assert answer[0] == status, answer
        return dict(answer[3])

    # Pending, queued behind another (queue_position), read by its account and its parent
    check(queued, child, 200)
    check(queued, parent, 200)
    # Pending, building with progress (started_at, an estimate)
    claim = pair.queue.claim("w")
    assert claim is not None
    assert claim.state.id == building
    pair.clock.advance(seconds=10)
    assert pair.queue.set_progress(building, "w", 0.25)
    check(building, child, 200)
    check(queued, child, 200)  # now first in the queue
    # Complete, with a signed report_url; read twice (the second reuses the first answer)
    assert pair.queue.complete(
        building, "w", file_key=f"{building}/r.csv", record_count=7, size_bytes=70
    )
    check(building, child, 200)
    check(building, parent, 200)
    pair.clock.advance(seconds=1)  # a fresh link
    check(building, child, 200)
    # Failed (the queue allows one attempt)
    claim = pair.queue.claim("w")
    assert claim is not None
    pair.queue.fail_attempt(queued, "w", "the engine broke", retry_after=timedelta(0))
    check(queued, child, 200)
    # Expired: past expires_at, before the sweeper ran
    pair.clock.advance(days=30)
    check(building, child, 200)
    # Another account's request, an unknown id, a deleted request: 404
    check(building, other, 404)
    check("req_does_not_exist", child, 404)
    assert pair.lean.delete(f"{V1}/{queued}", headers=bearer(child)).status_code == 200
    check(queued, child, 404)
    # an id with characters a path may carry
    check("a%20b", child, 404)
    assert len(lean_calls) == 13


@pytest.mark.parametrize("surface", SURFACES)
def test_auth_failures_answer_the_same(
    pair: Pair, surface: str, caplog: pytest.LogCaptureFixture, lean_calls: list[str]
) -> None:
    secret = pair.key("acct-a")
    request_id = pair.create(secret)
    path = f"{surface}/{request_id}"
    revoked = pair.catalog.create_key("acct-a", KeyScope.REPORTS)
    pair.catalog.revoke_key(revoked.key.id)
    cases: list[tuple[dict[str, str], int]] = [
        ({}, 401),  # no Authorization header
        ({"Authorization": "Basic abc"}, 401),  # another scheme
        ({"Authorization": "Bearer "}, 401),  # no key
        (bearer("mdr_not_a_key"), 401),  # unknown key
        (bearer(revoked.secret), 401),  # revoked key
        ({"Authorization": f"Token {secret}"}, 200),  # the v1 clients' scheme
        (bearer(pair.key("acct-a", "ingest")), 403),  # the wrong scope
        (bearer(pair.key("acct-admin", "admin")), 200),  # an admin key sees every account
    ]
    for headers, status in cases:
        answer = same_answer(pair, path, headers, caplog)
        assert answer[0] == status, (headers, answer)
    assert len(lean_calls) == len(cases)


@pytest.fixture
def tight(tmp_path: Any, catalog_url: str) -> Settings:
    return load_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "catalog_url": catalog_url,
            "signing_secret": "test-secret-0123456789",
            "rate_limit_rps": 1,
            "rate_limit_burst": 2,
            "create_rate_limit_burst": 1_000_000,
            "max_pending_per_account": 0,
        },
        environ={},
    )


@pytest.mark.parametrize("surface", SURFACES)
def test_rate_limit_answers_the_same(
    tight: Settings,
    catalog: Catalog,
    clock: FakeClock,
    surface: str,
    caplog: pytest.LogCaptureFixture,
    lean_calls: list[str],
) -> None:
    for pair in make_pair(tight, catalog, clock):
        secret = pair.key("acct-a")
        request_id = pair.create(secret)
        path = f"{surface}/{request_id}"
        # a burst of 2 and a fake clock that never refills: 200 through each app (1 left,
        # then 0), then 429 with Retry-After from both
        first = same_answer(pair, path, bearer(secret), caplog)
        assert first[0] == 200
        second = same_answer(pair, path, bearer(secret), caplog)
        assert second[0] == 429
        assert dict(second[1])[b"retry-after"] == b"1"
        assert dict(second[1])[b"ratelimit-remaining"] == b"0"
    assert len(lean_calls) == 2


def test_the_lean_path_answers_only_its_routes(pair: Pair, lean_calls: list[str]) -> None:
    secret = pair.key("acct-a")
    request_id = pair.create(secret)
    for path in [
        f"{V1}/{request_id}/",  # a trailing slash
        f"{V1}/{request_id}/webhook_deliveries",
        f"{V1}/",
        V1,
        f"{V2}/{request_id}/webhook_deliveries",
        f"/reporting/mdr_requestsX/{request_id}",
    ]:
        pair.lean.get(path, headers=bearer(secret), follow_redirects=False)
    pair.lean.delete(f"{V1}/{request_id}", headers=bearer(secret))
    pair.lean.head(f"{V1}/{request_id}", headers=bearer(secret))
    pair.lean.options(f"{V1}/{request_id}", headers=bearer(secret))
    assert lean_calls == []


def test_no_other_route_answers_a_get_the_lean_path_takes(pair: Pair) -> None:
    """The lean path takes every GET of ``<prefix>/<one segment>``: no route but the
    status read may answer one, or the router would have picked it instead."""
    app = pair.lean.app
    assert isinstance(app.routes, list)
    for context in iter_route_contexts(app.routes):
        path = getattr(context, "path", "") or ""
        methods = getattr(context, "methods", None) or set()
        for prefix in SURFACES:
            rest = path.removeprefix(prefix + "/")
            if rest != path and "/" not in rest and ("GET" in methods or not methods):
                assert rest == "{request_id}", path
                assert isinstance(context.route, APIRoute)
                assert context.route.endpoint.__name__ == "get", path


def test_openapi_still_lists_the_status_reads(pair: Pair) -> None:
    paths = pair.lean.get("/openapi.json").json()["paths"]
    for prefix in SURFACES:
        assert "get" in paths[f"{prefix}/{{request_id}}"]
        assert "delete" in paths[f"{prefix}/{{request_id}}"]


@pytest.mark.parametrize("surface", SURFACES)
def test_a_crash_answers_the_same(
    pair: Pair,
    surface: str,
    caplog: pytest.LogCaptureFixture,
    lean_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = pair.key("acct-a")
    request_id = pair.create(secret)

    def broken(*_args: Any) -> Any:
        raise RuntimeError("the catalog broke")

    monkeypatch.setattr(pair.services.requests, "get", broken)
    answer = same_answer(pair, f"{surface}/{request_id}", bearer(secret), caplog)
    assert answer[0] == 500
    assert b"internal_error" in answer[2]
    assert len(lean_calls) == 1
