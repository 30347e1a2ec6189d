"""What the schemathesis run found, one regression test each (issue 10, item 3)."""

from __future__ import annotations

import uuid
from typing import Any

from mdr_reporting.domain.limits import MAX_FILTERS, MAX_LIST_ITEMS, MAX_TEXT_LENGTH
from mdr_reporting.domain.times import zone_names
from tests.conftest import Api
from tests.records import ndjson, record

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"
BODY = {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-08T00:00:00Z"}


def allowed(response: Any) -> set[str]:
    return {m.strip() for m in response.headers["allow"].split(",")}


def test_every_405_lists_every_method_of_the_resource_and_options_answers_204(
    api: Api,
) -> None:
    item = f"{V1}/{uuid.uuid4()}"
    for path, methods in (
        (item, {"GET", "DELETE", "OPTIONS"}),
        (f"{V2}/{uuid.uuid4()}", {"GET", "DELETE", "OPTIONS"}),
        (V1, {"GET", "POST", "OPTIONS"}),
        ("/ingest/mdrs", {"POST", "OPTIONS"}),
    ):
        for method in ("PUT", "PATCH"):
            refused = api.client.request(method, path)
            assert refused.status_code == 405 and allowed(refused) == methods, path
            assert refused.json()["errors"][0]["code"] == "method_not_allowed"
        options = api.client.options(path)
        assert options.status_code == 204 and allowed(options) == methods, path
    download = api.client.patch(f"/reports/{uuid.uuid4()}/download")
    assert download.status_code == 405 and {"GET", "HEAD"} <= allowed(download)


def test_ingest_errors_put_line_field_and_reason_under_the_declared_meta(api: Api) -> None:
    headers = {**api.headers("acct-a", "ingest"), "Content-Type": "application/x-ndjson"}
    response = api.client.post(
        "/ingest/mdrs", content=ndjson([record(0, status="lost")]), headers=headers
    )
    assert response.status_code == 400
    problem = response.json()["errors"][0]
    assert problem["meta"] == {"line": 1, "field": "status", "reason": problem["meta"]["reason"]}
    assert set(problem) == {"code", "title", "detail", "source", "meta"}
    document = api.client.get("/openapi.json").json()
    declared = document["components"]["schemas"]["ErrorObject"]["properties"]
    assert set(declared) == set(problem)


def test_the_published_body_constraints_are_the_domain_constants(api: Api) -> None:
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    v1 = schemas["V1CreateBody"]["properties"]

    def array(prop: dict[str, Any]) -> dict[str, Any]:
        return next(s for s in prop["anyOf"] if s.get("type") == "array")

    assert array(v1["connections"])["maxItems"] == MAX_LIST_ITEMS
    assert array(v1["profiles"])["maxItems"] == MAX_LIST_ITEMS
    assert array(v1["filters"])["maxItems"] == MAX_FILTERS
    assert array(v1["record_types"])["minItems"] == 1
    name = next(s for s in v1["report_name"]["anyOf"] if s.get("type") == "string")
    assert (name["minLength"], name["maxLength"]) == (1, MAX_TEXT_LENGTH)
    zone = next(s for s in v1["timezone"]["anyOf"] if s.get("type") == "string")
    assert zone["enum"] == zone_names()
    assert "pattern" in v1["start_time"]
    assert schemas["V1CreateBody"]["additionalProperties"] is False
    assert schemas["V2CreateBody"]["additionalProperties"] is True  # ignored on v2
    assert schemas["MdrRecord"]["additionalProperties"] is False


def test_schema_valid_spellings_are_accepted(api: Api) -> None:
    headers = api.headers()
    body = {
        **BODY,
        "connections": [15221.0, 7, " c-1 "],  # 15221.0 is an integer to JSON Schema
        "directions": [" InBound "],
        "format": "CSV.GZ",
        "filters": [{"filter_type": "AND", "cli": "++", "cli_filter": "Starts_With"}],
        "webhook_url": "HTTPS://hooks.example:8443/x?y=1",
        "timezone": None,
        "record_types": None,
    }
    created = api.client.post(V1, json=body, headers=headers)
    assert created.status_code == 200, created.text
    view = created.json()
    assert view["connections"] == ["15221", "7", "c-1"] and view["format"] == "csv.gz"
    assert view["directions"] == ["inbound"] and view["record_types"] == [1]


def test_malformed_urls_and_unknown_accounts_are_4xx_naming_the_field(api: Api) -> None:
    bad = api.client.post(V1, json={**BODY, "webhook_url": "http://["}, headers=api.headers())
    assert bad.status_code == 400 and bad.json()["errors"][0]["source"]["pointer"] == "/webhook_url"
    admin = api.headers("acct-a", "admin")
    unknown = api.client.post(V1, json={**BODY, "managed_accounts": ["nobody"]}, headers=admin)
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["source"]["pointer"] == "/managed_accounts/0"


def test_an_integral_json_number_is_an_integer_record_field(api: Api) -> None:
    headers = {**api.headers("acct-a", "ingest"), "Content-Type": "application/json"}
    rows = [record(0, parts=2.0, media_size_bytes=4787.0)]
    response = api.client.post("/ingest/mdrs", json=rows, headers=headers)
    assert response.status_code == 200, response.text
    bad = api.client.post("/ingest/mdrs", json=[record(1, parts=2.5)], headers=headers)
    assert bad.status_code == 400 and bad.json()["errors"][0]["meta"]["field"] == "parts"
