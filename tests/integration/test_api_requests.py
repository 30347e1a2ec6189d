"""The request API in-process over HTTP: both surfaces, auth, isolation, limits, idempotency."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from mdr_reporting.api.schemas import ErrorEnvelope, V1Request, V2Envelope, V2ListEnvelope
from tests.conftest import Api

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"
BODY = {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-08T00:00:00Z"}


def create(api: Api, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = api.client.post(V1, json={**BODY, **fields}, headers=headers)
    assert response.status_code == 200, response.text
    return V1Request.model_validate(response.json()).model_dump()


def errors(response: Any, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    return ErrorEnvelope.model_validate(response.json()).model_dump(exclude_none=True)["errors"]


def test_create_returns_every_section_3_field_with_its_type(api: Api) -> None:
    body = {
        **BODY,
        "timezone": "America/Chicago",
        "directions": ["outbound"],
        "record_types": [1, 3],
        "connections": [1234],
        "profiles": ["p-1"],
        "filters": [
            {"filter_type": "and", "cli": "+1312", "cli_filter": "starts_with"},
            '{"filter_type": "or", "tags_list": "campaign-7"}',
        ],
    }
    response = api.client.post(V1, json=body, headers=api.headers())
    assert response.status_code == 200
    got = V1Request.model_validate(response.json()).model_dump()
    assert got["status"] == 1 and got["report_url"] is None
    assert got["start_time"] == "2026-01-31T18:00:00-06:00"
    assert got["end_time"] == "2026-02-07T18:00:00-06:00"
    assert got["call_types"] == [2] and got["directions"] == ["outbound"]
    assert got["record_types"] == [1, 3] and got["connections"] == ["1234"]
    assert isinstance(got["filters"], str)
    assert json.loads(got["filters"])[1] == {"filter_type": "or", "tags_list": ["campaign-7"]}
    assert got["created_at"].endswith("+00:00") and got["updated_at"] == got["created_at"]
    assert got["progress"] == 0.0 and got["record_count"] is None and got["expires_at"] is None
    assert got["format"] == "csv" and got["include_message_body"] is False
    assert got["warnings"] == [] and got["accounts"] == ["acct-a"]


def test_recent_end_time_carries_the_warning(api: Api) -> None:
    got = create(api, api.headers(), end_time=None)  # default end = now (the fake clock)
    assert got["end_time"] == "2026-03-01T12:00:00+00:00"
    assert "recent messages may still change status" in got["warnings"][0]


def test_validation_errors_use_the_envelope_with_pointers(api: Api) -> None:
    response = api.client.post(
        V1,
        json={**BODY, "record_types": [], "filters": [{"filter_type": "or", "tags_list": ["x"]}]},
        headers=api.headers(),
    )
    found = {e["source"]["pointer"] for e in errors(response, 400)}
    assert found == {"/record_types", "/filters/0/filter_type"}


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
    ],
)
def test_bad_bodies_are_400_never_500(api: Api, content: bytes, detail: str) -> None:
    response = api.client.post(
        V1, content=content, headers={**api.headers(), "Content-Type": "application/json"}
    )
    assert detail in errors(response, 400)[0]["detail"]


def test_body_over_1_mib_is_413(api: Api) -> None:
    huge = {**BODY, "report_name": "x", "profiles": ["p" * 1000] * 1100}
    response = api.client.post(V1, json=huge, headers=api.headers())
    assert errors(response, 413)[0]["code"] == "payload_too_large"

    def chunks() -> Any:  # no Content-Length: the limit holds while streaming too
        for _ in range(1100):
            yield b" " * 1024

    response = api.client.post(V1, content=chunks(), headers=api.headers())
    assert response.status_code == 413
    assert api.client.get(V1, headers=api.headers()).headers["X-Total-Count"] == "0"


def test_gzip_body_is_refused_clearly_not_crashing(api: Api) -> None:
    response = api.client.post(
        V1, content=gzip.compress(json.dumps(BODY).encode()), headers=api.headers()
    )
    assert response.status_code == 400


# -- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer mdr_unknown", "Basic dXNlcjpwYXNz", "mdr_nokeyword"],
)
def test_missing_or_unknown_key_is_401(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in (("POST", V1), ("GET", V1), ("GET", V2), ("POST", V2)):
        response = api.client.request(method, path, json=BODY, headers=headers)
        assert errors(response, 401)[0]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_scheme_is_accepted(api: Api) -> None:
    response = api.client.get(V1, headers={"Authorization": f"Token {api.key()}"})
    assert response.status_code == 200


def test_revoked_key_is_401(api: Api) -> None:
    api.key()
    new = api.catalog.create_key("acct-a", "reports")
    api.catalog.revoke_key(new.key.id)
    response = api.client.get(V1, headers={"Authorization": f"Bearer {new.secret}"})
    assert response.status_code == 401


def test_key_without_reports_scope_is_403(api: Api) -> None:
    headers = api.headers(scope="ingest")
    assert errors(api.client.post(V1, json=BODY, headers=headers), 403)[0]["code"] == "forbidden"
    assert api.client.get(V2, headers=headers).status_code == 403


def test_admin_key_has_every_scope(api: Api) -> None:
    assert api.client.post(V1, json=BODY, headers=api.headers(scope="admin")).status_code == 200


# -- isolation ----------------------------------------------------------------------------


def test_another_accounts_request_is_404_on_get_list_and_delete(api: Api) -> None:
    mine, theirs = api.headers("acct-a"), api.headers("acct-b")
    request_id = create(api, mine)["id"]
    for path in (f"{V1}/{request_id}", f"{V2}/{request_id}"):
        assert errors(api.client.get(path, headers=theirs), 404)[0]["code"] == "not_found"
        assert api.client.delete(path, headers=theirs).status_code == 404
    assert api.client.get(V1, headers=theirs).json() == []
    assert api.client.get(V2, headers=theirs).json()["meta"]["total_results"] == 0
    assert api.client.get(f"{V1}/{request_id}", headers=mine).status_code == 200


def test_unknown_and_malformed_ids_are_404(api: Api) -> None:
    headers = api.headers()
    for request_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert api.client.get(f"{V1}/{request_id}", headers=headers).status_code == 404
        assert api.client.delete(f"{V2}/{request_id}", headers=headers).status_code == 404


def test_parent_sees_managed_accounts_requests_but_not_the_reverse(api: Api) -> None:
    parent = api.headers("acct-p")
    api.key("acct-c", parent="acct-p")
    child = api.headers("acct-c")
    child_request = create(api, child)["id"]
    parent_request = create(api, parent)["id"]
    assert api.client.get(f"{V1}/{child_request}", headers=parent).status_code == 200
    assert api.client.get(f"{V1}/{parent_request}", headers=child).status_code == 404


def test_managed_accounts_rules(api: Api) -> None:
    parent = api.headers("acct-p")
    api.key("acct-c", parent="acct-p")
    api.key("acct-x")
    got = create(api, parent, managed_accounts=["acct-c"])
    assert got["accounts"] == ["acct-c", "acct-p"]
    assert create(api, parent, select_all_managed_accounts=True)["accounts"] == [
        "acct-c",
        "acct-p",
    ]
    response = api.client.post(V1, json={**BODY, "managed_accounts": ["acct-x"]}, headers=parent)
    assert errors(response, 403)[0]["source"]["pointer"] == "/managed_accounts/0"
    child = api.headers("acct-c")
    response = api.client.post(V1, json={**BODY, "managed_accounts": ["acct-p"]}, headers=child)
    assert response.status_code == 403


# -- one resource, two views --------------------------------------------------------------


def test_v1_and_v2_are_views_of_one_resource(api: Api) -> None:
    headers = api.headers()
    made_v1 = create(api, headers, directions=["inbound"], connections=["77", "abc"])
    response = api.client.get(f"{V2}/{made_v1['id']}", headers=headers)
    data = V2Envelope.model_validate(response.json()).data
    assert data.start_date == made_v1["start_time"] and data.end_date == made_v1["end_time"]
    assert data.directions == ["INBOUND"] and data.record_types == ["COMPLETED"]
    assert data.connections == [77, "abc"] and data.status == "PENDING"
    assert data.record_type == "mdr_report"

    response = api.client.post(
        V2,
        json={
            **BODY,
            "directions": [1, 2],
            "record_types": [2, 3],
            "extra": "ignored",
            "filters": [{"filter_type": "and", "tags_list": "t1"}],
        },
        headers=headers,
    )
    assert response.status_code == 200
    made_v2 = V2Envelope.model_validate(response.json()).data
    assert made_v2.record_types == ["INCOMPLETE", "ERRORS"]
    assert made_v2.filters[0].tags_list == ["t1"]
    seen_v1 = V1Request.model_validate(api.client.get(f"{V1}/{made_v2.id}", headers=headers).json())
    assert seen_v1.record_types == [2, 3] and seen_v1.call_types == [1, 2]


def test_v2_validation_is_400_with_pointer(api: Api) -> None:
    response = api.client.post(V2, json={"start_time": BODY["start_time"]}, headers=api.headers())
    assert errors(response, 400)[0]["source"]["pointer"] == "/end_time"


def test_delete_answers_the_deleted_object_and_it_is_gone(api: Api) -> None:
    headers = api.headers()
    first, second = create(api, headers)["id"], create(api, headers)["id"]
    response = api.client.delete(f"{V1}/{first}", headers=headers)
    assert response.status_code == 200 and V1Request.model_validate(response.json()).id == first
    response = api.client.delete(f"{V2}/{second}", headers=headers)
    assert V2Envelope.model_validate(response.json()).data.id == second
    assert api.client.get(f"{V1}/{first}", headers=headers).status_code == 404
    assert api.client.delete(f"{V1}/{first}", headers=headers).status_code == 404


# -- lists --------------------------------------------------------------------------------


def test_v1_list_pages_newest_first_with_total_header(api: Api) -> None:
    headers = api.headers()
    made = []
    for _ in range(5):
        api.clock.advance(seconds=1)
        made.append(create(api, headers)["id"])
    response = api.client.get(V1, params={"page": 2, "per_page": 2}, headers=headers)
    assert response.status_code == 200 and response.headers["X-Total-Count"] == "5"
    assert [r["id"] for r in response.json()] == [made[2], made[1]]
    assert len(api.client.get(V1, headers=headers).json()) == 5


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"page": 0}, "page"),
        ({"page": "two"}, "page"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 1001}, "per_page"),
    ],
)
def test_v1_list_bad_parameters_are_400(api: Api, params: dict[str, Any], name: str) -> None:
    response = api.client.get(V1, params=params, headers=api.headers())
    assert errors(response, 400)[0]["source"] == {"parameter": name}


def test_v2_list_meta_and_page_limits(api: Api) -> None:
    headers = api.headers()
    for _ in range(3):
        api.clock.advance(seconds=1)
        create(api, headers)
    response = api.client.get(V2, params={"page[number]": 2, "page[size]": 2}, headers=headers)
    listing = V2ListEnvelope.model_validate(response.json())
    assert len(listing.data) == 1
    assert listing.meta.model_dump() == {
        "page_number": 2,
        "page_size": 2,
        "total_pages": 2,
        "total_results": 3,
    }
    default = V2ListEnvelope.model_validate(api.client.get(V2, headers=headers).json())
    assert default.meta.page_size == 20 and default.meta.page_number == 1
    for params in ({"page[size]": 251}, {"page[size]": 0}, {"page[number]": 0}):
        response = api.client.get(V2, params=params, headers=headers)
        assert errors(response, 400)[0]["source"]["parameter"] in {"page[size]", "page[number]"}


# -- idempotency --------------------------------------------------------------------------


def test_idempotency_key_returns_the_first_request_for_24_hours(api: Api) -> None:
    headers = {**api.headers(), "Idempotency-Key": "order-42"}
    first = api.client.post(V1, json=BODY, headers=headers).json()
    again = api.client.post(V1, json=BODY, headers=headers).json()
    assert again["id"] == first["id"]
    assert api.client.get(V1, headers=headers).headers["X-Total-Count"] == "1"
    conflict = api.client.post(V1, json={**BODY, "report_name": "other"}, headers=headers)
    assert errors(conflict, 409)[0]["code"] == "conflict"
    other_account = {**api.headers("acct-b"), "Idempotency-Key": "order-42"}
    assert api.client.post(V1, json=BODY, headers=other_account).json()["id"] != first["id"]
    api.clock.advance(hours=24, seconds=1)
    assert api.client.post(V1, json=BODY, headers=headers).json()["id"] != first["id"]


def test_idempotency_key_too_long_is_400(api: Api) -> None:
    headers = {**api.headers(), "Idempotency-Key": "k" * 256}
    response = api.client.post(V1, json=BODY, headers=headers)
    assert errors(response, 400)[0]["source"] == {"parameter": "Idempotency-Key"}


# -- framework edges ----------------------------------------------------------------------


def test_unknown_route_and_method_use_the_envelope(api: Api) -> None:
    assert errors(api.client.get("/nowhere"), 404)[0]["code"] == "not_found"
    response = api.client.put(V1, json=BODY, headers=api.headers())
    assert errors(response, 405)[0]["code"] == "method_not_allowed"
