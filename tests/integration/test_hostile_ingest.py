"""Issue 10, first table: bodies that once crashed the server, got a 500 or were stored.

Each is a 400 naming the line (and the field where there is one), and the lake is
exactly as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mdr_reporting.lake import open_lake
from tests.conftest import Api
from tests.records import ndjson, record

URL = "/ingest/mdrs"
DEEP = 10_000


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    """SQLite only: the catalog backend does not change what these inputs do."""
    return f"sqlite:///{tmp_path / 'catalog.db'}"


def lake_state(api: Api) -> tuple[int, int, int]:
    figures = open_lake(api.services.settings.lake_url).stats()
    return figures.version, figures.files, figures.rows


def post(api: Api, body: bytes, content_type: str = "application/x-ndjson") -> Any:
    headers = {**api.headers("acct-a", "ingest"), "Content-Type": content_type}
    return api.client.post(URL, content=body, headers=headers)


def bad_utf8_cli() -> bytes:
    line = json.dumps(record(1, cli="@@CLI@@")).encode()
    return line.replace(b"@@CLI@@", b"\xff\xfe") + b"\n"


CASES: list[tuple[str, bytes, str, int, str, str]] = [
    # name, body, content type, line, field, words of the reason
    ("null", b"null\n", "application/x-ndjson", 1, "", "got null"),
    ("empty array", b"[]", "application/json", 1, "", "array is empty"),
    ("deep body", b"[" * DEEP + b"]" * DEEP, "application/json", 1, "", "nested too deeply"),
    ("deep ndjson", b"[" * DEEP + b"]" * DEEP + b"\n", "application/x-ndjson", 1, "", "deeply"),
    (
        "deep in a record",
        json.dumps(record(0)).encode()[:-1] + b', "tags": ' + b"[" * DEEP + b"]" * DEEP + b"}\n",
        "application/x-ndjson",
        1,
        "",
        "nested too deeply",
    ),
    (
        "surrogate encoded as bytes",
        ndjson([record(0)])
        + json.dumps(record(1, message_body="x\ud800y"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
        + b"\n",
        "application/x-ndjson",
        2,
        "message_body",
        "not valid UTF-8",
    ),
    (
        "escaped lone surrogate",
        ndjson([record(0)]) + json.dumps(record(1, message_body="\ud800")).encode() + b"\n",
        "application/x-ndjson",
        2,
        "message_body",
        "lone surrogate",
    ),
    (
        "invalid utf-8",
        ndjson([record(0)]) + bad_utf8_cli(),
        "application/x-ndjson",
        2,
        "cli",
        "not valid UTF-8",
    ),
    (
        "invalid utf-8 in an array",
        b"[" + json.dumps(record(0)).encode() + b"," + bad_utf8_cli() + b"]",
        "application/json",
        2,
        "cli",
        "not valid UTF-8",
    ),
    (
        "parts as a string",
        ndjson([record(0, parts="2")]),
        "application/x-ndjson",
        1,
        "parts",
        "must be an integer, got a string",
    ),
    (
        "year 1",
        ndjson([record(0, created_at="0001-01-01T00:00:00Z")]),
        "application/x-ndjson",
        1,
        "created_at",
        "years 1970 to 9000",
    ),
    (
        "year 9999 sent_at",
        ndjson([record(0, sent_at="9999-12-31T23:59:59Z")]),
        "application/x-ndjson",
        1,
        "sent_at",
        "years 1970 to 9000",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "line", "field", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hostile_bodies_are_400_and_store_nothing(
    api: Api, body: bytes, content_type: str, line: int, field: str, reason: str
) -> None:
    before = lake_state(api)
    response = post(api, body, content_type)
    assert response.status_code == 400, response.text
    first = response.json()["errors"][0]
    row = first.get("meta", first)  # line, field and reason (in "meta" once the schema says so)
    assert (row["line"], row["field"]) == (line, field)
    assert reason in row["reason"] and reason in first["detail"]
    assert lake_state(api) == before
    assert api.client.get("/health").status_code == 200  # still up
    ok = post(api, ndjson([record(5)]))
    assert ok.status_code == 200 and ok.json() == {"accepted": 1}
