"""``POST /ingest/mdrs`` (api.md section 13) through the app in-process."""

from __future__ import annotations

import gzip
import json
from typing import Any

from mdr_reporting.lake import open_lake
from mdr_reporting.lake.read import read_latest
from tests.conftest import Api
from tests.records import ndjson, record

URL = "/ingest/mdrs"
NDJSON = {"Content-Type": "application/x-ndjson"}


def ingest_headers(api: Api, account: str = "acct-a", scope: str = "ingest") -> dict[str, str]:
    return {**api.headers(account, scope), **NDJSON}


def stored(api: Api) -> dict[str, dict[str, Any]]:
    lake = open_lake(api.services.settings.lake_url)
    snapshot = lake.snapshot()
    rows = [r for files in snapshot.files.values() for r in read_latest(files).to_pylist()]
    return {r["id"]: r for r in rows}


def test_ndjson_batch_is_stored_durably_and_visible(api: Api) -> None:
    rows = [record(i) for i in range(20)]
    response = api.client.post(URL, content=ndjson(rows), headers=ingest_headers(api))
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 20}
    assert sorted(stored(api)) == [r["id"] for r in rows]


def test_json_array_and_gzip(api: Api) -> None:
    headers = ingest_headers(api)
    body = json.dumps([record(0), record(1)]).encode()
    response = api.client.post(
        URL, content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.json() == {"accepted": 2}
    packed = gzip.compress(ndjson([record(2), record(3)]))
    response = api.client.post(URL, content=packed, headers={**headers, "Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json() == {"accepted": 2}
    assert len(stored(api)) == 4


def test_a_bad_row_rejects_the_whole_batch(api: Api) -> None:
    rows = [record(0), record(1, direction="sideways"), record(2, rate=0.1234567)]
    response = api.client.post(URL, content=ndjson(rows), headers=ingest_headers(api))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["meta"]["line"], e["meta"]["field"]) for e in errors] == [
        (2, "direction"),
        (3, "rate"),
    ]
    assert all(e["code"] == "invalid_record" and e["meta"]["reason"] in e["detail"] for e in errors)
    assert stored(api) == {}


def test_errors_list_the_first_100_rows(api: Api) -> None:
    rows = [record(i, status="lost") for i in range(150)]
    response = api.client.post(URL, content=ndjson(rows), headers=ingest_headers(api))
    assert response.status_code == 400 and len(response.json()["errors"]) == 100
    assert response.json()["errors"][0]["meta"]["line"] == 1


def test_resending_a_batch_changes_nothing(api: Api) -> None:
    headers = ingest_headers(api)
    body = ndjson([record(i) for i in range(10)])
    assert api.client.post(URL, content=body, headers=headers).json() == {"accepted": 10}
    lake = open_lake(api.services.settings.lake_url)
    before = lake.stats()
    assert api.client.post(URL, content=body, headers=headers).json() == {"accepted": 10}
    after = lake.stats()
    assert (after.version, after.rows, after.files) == (before.version, before.rows, before.files)


def test_a_later_version_replaces_the_earlier_one(api: Api) -> None:
    headers = ingest_headers(api)
    first = record(0, updated_at="2026-03-01T09:00:01Z")
    api.client.post(URL, content=ndjson([first]), headers=headers)
    final = dict(first, status="delivered", updated_at="2026-03-01T09:00:09Z")
    api.client.post(URL, content=ndjson([final]), headers=headers)
    moved = dict(final, account_id="acct-b", updated_at="2026-03-01T09:00:10Z")
    api.key("acct-b", "reports")
    response = api.client.post(
        URL, content=ndjson([moved]), headers=ingest_headers(api, scope="admin")
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["meta"]["field"] == "account_id"
    assert stored(api)["msg-000000"]["status"] == "delivered"


def test_accounts_the_key_may_write(api: Api) -> None:
    headers = ingest_headers(api, "acct-a")
    api.key("acct-child", "reports", parent="acct-a")
    api.key("acct-other", "reports")
    ok = api.client.post(URL, content=ndjson([record(0, account_id="acct-child")]), headers=headers)
    assert ok.status_code == 200
    foreign = [record(1), record(2, account_id="acct-other")]
    response = api.client.post(URL, content=ndjson(foreign), headers=headers)
    assert response.status_code == 403 and "acct-other" in response.text
    unknown = api.client.post(
        URL, content=ndjson([record(3, account_id="acct-nope")]), headers=headers
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["meta"]["field"] == "account_id"
    admin = ingest_headers(api, "acct-admin", "admin")
    assert api.client.post(URL, content=ndjson(foreign), headers=admin).status_code == 200
    assert sorted(stored(api)) == ["msg-000000", "msg-000001", "msg-000002"]


def test_scope_and_key_are_required(api: Api) -> None:
    body = ndjson([record(0)])
    assert api.client.post(URL, content=body, headers=NDJSON).status_code == 401
    reports = {**api.headers("acct-a", "reports"), **NDJSON}
    assert api.client.post(URL, content=body, headers=reports).status_code == 403


def test_bodies_over_64_mib_are_refused_also_after_gunzip(api: Api) -> None:
    headers = ingest_headers(api)
    declared = {**headers, "Content-Length": str(64 * 1024 * 1024 + 1)}
    response = api.client.post(URL, content=b"x", headers=declared)
    assert response.status_code == 413
    bomb = gzip.compress(b" " * (64 * 1024 * 1024 + 10), compresslevel=9)
    assert len(bomb) < 1024 * 1024
    response = api.client.post(URL, content=bomb, headers={**headers, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "payload_too_large"


def test_malformed_bodies_are_400(api: Api) -> None:
    headers = ingest_headers(api)
    assert api.client.post(URL, content=b"", headers=headers).status_code == 400
    broken = api.client.post(
        URL, content=b"not gzip", headers={**headers, "Content-Encoding": "gzip"}
    )
    assert broken.status_code == 400
    not_json = api.client.post(URL, content=b"{nope\n", headers=headers)
    assert not_json.status_code == 400 and not_json.json()["errors"][0]["meta"]["line"] == 1
