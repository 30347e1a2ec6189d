"""Issue 10 on signed links: expiry seen by every reader at once, and a bad signature
that learns nothing (checked before any lookup), with no secret in any error."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from mdr_reporting.worker.testing import FakeBuilder
from tests.integration import test_report_downloads as shared
from tests.integration.test_report_downloads import Harness

# The lifecycle harness and its fixtures, shared with test_report_downloads.py.
anyio_backend = shared.anyio_backend
catalog = shared.catalog
clock = shared.clock
harness = shared.harness

pytestmark = pytest.mark.anyio
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"


async def test_past_expires_at_the_report_is_expired_before_the_sweeper_runs(
    harness: Harness,
) -> None:
    builder = FakeBuilder(rows=10)
    harness.start_worker(builder)
    created = await harness.create()
    await harness.wait(created["id"], 2)
    data = builder.render(harness.state(created["id"]))
    expires_at = harness.state(created["id"]).expires_at

    harness.clock.advance(timedelta(days=30) - timedelta(minutes=30))
    url = (await harness.get(created["id"]))["report_url"]  # a link good for 3 more hours
    assert (await harness.fetch(url)).content == data

    harness.clock.advance(timedelta(minutes=30))
    assert harness.clock() == expires_at  # and the sweeper has not run
    view = await harness.get(created["id"])
    assert (view["status"], view["report_url"]) == (4, None)
    v2 = await harness.client.get(f"{V2}/{created['id']}", headers=harness.auth)
    assert (v2.json()["data"]["status"], v2.json()["data"]["report_url"]) == ("EXPIRED", None)
    listed = await harness.client.get("/reporting/mdr_requests", headers=harness.auth)
    assert [r["status"] for r in listed.json()] == [4]
    refused = await harness.fetch(url)
    assert refused.status_code == 403 and data not in refused.content
    assert "expired" in refused.json()["errors"][0]["detail"]

    assert harness.sweeper.sweep().expired == 1  # the sweeper catches up later
    assert harness.stored_files() == []


async def test_a_bad_signature_says_the_same_for_known_and_unknown_ids(
    harness: Harness,
) -> None:
    harness.start_worker(FakeBuilder(rows=3))
    created = await harness.create()
    url = (await harness.wait(created["id"], 2))["report_url"]
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    sig = query["sig"][0]
    forged = ("A" if sig[0] != "A" else "B") + sig[1:]
    bad_query = f"file={query['file'][0]}&expires={query['expires'][0]}&sig={forged}"
    answers = []
    for request_id in (created["id"], str(uuid.uuid4()), "not-a-uuid"):
        response = await harness.client.get(f"/reports/{request_id}/download?{bad_query}")
        answers.append((response.status_code, response.json()))
        assert forged not in response.text and sig not in response.text
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 403 and "signature" in answers[0][1]["errors"][0]["detail"]

    # a deleted request with a good link: still no bytes, and nothing secret said
    await harness.client.delete(f"/reporting/mdr_requests/{created['id']}", headers=harness.auth)
    gone = await harness.fetch(url)
    assert gone.status_code == 403 and sig not in gone.text and "expires=" not in gone.text


async def test_a_failed_request_says_what_to_do_and_never_shows_paths(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    secret_path = "/srv/mdr/lake/data/2026-03-01/part-7-0-abc.parquet"
    builder = FakeBuilder(rows=3, fail_attempts=10, error=f"{secret_path}: Invalid string")
    harness.start_worker(builder)
    created = await harness.create()
    with caplog.at_level("WARNING", logger="mdr.worker"):
        failed = await harness.wait(created["id"], 3)
    assert "create it again later" in failed["error"]
    assert "/" not in failed["error"] and "Invalid" not in failed["error"]
    assert "Error" not in failed["error"]
    assert secret_path in caplog.text  # the operator's log keeps the detail
