"""Status while waiting on both surfaces: queue position while queued, then the build's
start and an estimated completion from its progress rate; null when not applicable."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mdr_reporting.api.schemas import V1Request, V2Envelope
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.domain.times import utc_iso
from tests.conftest import Api

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"
BODY = {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-08T00:00:00Z"}


def test_queued_then_building_then_done(api: Api) -> None:
    headers = api.headers()
    queue = JobQueue(
        api.catalog, lease=timedelta(minutes=1), max_attempts=3, retention=timedelta(days=30)
    )

    def v1(request_id: str) -> dict[str, Any]:
        response = api.client.get(f"{V1}/{request_id}", headers=headers)
        assert response.status_code == 200
        return V1Request.model_validate(response.json()).model_dump()

    def v2(request_id: str) -> dict[str, Any]:
        response = api.client.get(f"{V2}/{request_id}", headers=headers)
        assert response.status_code == 200
        return V2Envelope.model_validate(response.json()).data.model_dump()

    created = []
    for _ in range(3):
        response = api.client.post(V1, json=BODY, headers=headers)
        assert response.status_code == 200
        created.append(response.json())
        api.clock.advance(seconds=1)
    first, second, third = (c["id"] for c in created)
    assert [c["queue_position"] for c in created] == [0, 1, 2]  # the create answer has it too
    assert created[0]["started_at"] is None and created[0]["estimated_completion_at"] is None

    claim = queue.claim("w")
    assert claim is not None and claim.state.id == first
    started = api.clock.now
    building = v1(first)
    assert building["queue_position"] is None and building["started_at"] == utc_iso(started)
    assert building["estimated_completion_at"] is None  # no progress yet: no rate
    assert v1(second)["queue_position"] == 0 and v2(third)["queue_position"] == 1

    queue.set_progress(first, "w", 0.25)
    api.clock.advance(seconds=10)
    expected = utc_iso(started + timedelta(seconds=40))
    assert v1(first)["estimated_completion_at"] == expected
    assert v2(first)["estimated_completion_at"] == expected
    listed = api.client.get(V1, headers=headers).json()
    by_id = {item["id"]: item for item in listed}
    assert by_id[first]["estimated_completion_at"] == expected
    assert by_id[second]["queue_position"] == 0 and by_id[third]["queue_position"] == 1

    queue.complete(first, "w", file_key="k", record_count=1, size_bytes=1)
    done = v1(first)
    assert done["status"] == 2 and done["queue_position"] is None
    assert done["estimated_completion_at"] is None and done["started_at"] == utc_iso(started)

    # a failed attempt waiting for its retry is queued again, its start forgotten
    again = queue.claim("w")
    assert again is not None and again.state.id == second
    queue.fail_attempt(second, "w", "boom", retry_after=timedelta(seconds=5))
    waiting = v1(second)
    assert waiting["status"] == 1 and waiting["started_at"] is None
    assert waiting["queue_position"] is not None
