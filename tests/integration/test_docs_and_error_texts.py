"""What a new user meets first in the API (issue 7, item 5): /docs that explain every
operation with examples that work as is, and error texts that say what to fix."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from tests.conftest import Api
from tests.records import ndjson, record


def operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    document = api.client.get("/openapi.json").json()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_operation_has_a_summary_and_a_description(api: Api) -> None:
    found = operations(api)
    assert len(found) >= 10
    for method, path, operation in found:
        assert operation.get("summary"), (method, path)
        assert len(operation.get("description") or "") > 40, (method, path)


def test_every_request_body_example_succeeds_as_is(api: Api) -> None:
    keys = {"reports": api.headers("acct-01"), "ingest": api.headers("acct-01", "ingest")}
    sent = 0
    for method, path, operation in operations(api):
        content = operation.get("requestBody", {}).get("content", {})
        for media, body in content.items():
            assert "example" in body, (method, path, media)
            example = body["example"]
            data = example if isinstance(example, str) else json.dumps(example)
            key = keys["ingest" if path.startswith("/ingest") else "reports"]
            answer = api.client.request(
                method, path, content=data, headers={**key, "Content-Type": media}
            )
            assert answer.status_code == 200, (method, path, media, answer.text)
            sent += 1
    assert sent >= 4  # v1 and v2 creates, ingest as NDJSON and as a JSON array


def test_a_future_start_without_end_points_at_start_time(api: Api) -> None:
    future = (api.clock() + timedelta(days=2)).isoformat()
    answer = api.client.post(
        "/reporting/mdr_requests", json={"start_time": future}, headers=api.headers()
    )
    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["source"] == {"pointer": "/start_time"}
    assert "start_time is in the future" in error["detail"]
    assert "end_time" in error["detail"]


def test_an_unknown_record_type_lists_the_valid_values(api: Api) -> None:
    body = {"start_time": "2024-02-22T00:00:00Z", "record_types": [7]}
    answer = api.client.post("/reporting/mdr_requests", json=body, headers=api.headers())
    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["source"] == {"pointer": "/record_types/0"}
    assert error["detail"] == (
        "record_types has no value 7: valid values are 1 (complete), 2 (incomplete), 3 (errors)"
    )


def test_an_ingest_403_names_the_line(api: Api) -> None:
    api.key("acct-other")
    rows = [record(0), record(1), record(2, account_id="acct-other")]
    answer = api.client.post(
        "/ingest/mdrs",
        content=ndjson(rows),
        headers={**api.headers("acct-a", "ingest"), "Content-Type": "application/x-ndjson"},
    )
    assert answer.status_code == 403
    [error] = answer.json()["errors"]
    assert error["detail"] == "line 3: this key may not write records of account acct-other"


def test_an_ingest_of_an_unknown_account_names_it(api: Api) -> None:
    answer = api.client.post(
        "/ingest/mdrs",
        content=ndjson([record(0, account_id="acct-nobody")]),
        headers={
            **api.headers("acct-nobody-admin", "admin"),
            "Content-Type": "application/x-ndjson",
        },
    )
    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["detail"].endswith("account acct-nobody does not exist")
