"""Issue 10, second table and item 9: request bodies that got a 500, or were accepted.

Every one is a 400 whose pointer names the field and whose detail names the reason
(or the limit), on both surfaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mdr_reporting.domain.limits import (
    MAX_FILTERS,
    MAX_ID_LENGTH,
    MAX_LIST_ITEMS,
    MAX_TAGS_PER_FILTER,
    MAX_TEXT_LENGTH,
)
from tests.conftest import Api

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"
BODY = {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-08T00:00:00Z"}
NESTED = "[" * 5000 + '"x"' + "]" * 5000


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    """SQLite only: the catalog backend does not change what these inputs do."""
    return f"sqlite:///{tmp_path / 'catalog.db'}"


def cli_filter(value: str = "+1312", kind: str = "and") -> dict[str, str]:
    return {"filter_type": kind, "cli": value, "cli_filter": "starts_with"}


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # name, fields, pointer, words of the detail
    ("nested filter string", {"filters": [NESTED]}, "/filters/0", "must be a JSON object"),
    ("nul in start_time", {"start_time": "2026-02-01T00:00:00\x00Z"}, "/start_time", "control"),
    ("nul in the date", {"start_time": "2026-02-01\x0000:00:00Z"}, "/start_time", "control"),
    ("nul in report_name", {"report_name": "a\x00b"}, "/report_name", "control"),
    ("a final newline", {"report_name": "weekly\n"}, "/report_name", "control"),
    ("tab in a filter", {"filters": [cli_filter("+1\t312")]}, "/filters/0/cli", "control"),
    (
        "too many connections",
        {"connections": list(range(MAX_LIST_ITEMS + 1))},
        "/connections",
        f"at most {MAX_LIST_ITEMS}",
    ),
    (
        "too many profiles",
        {"profiles": [f"p{i}" for i in range(MAX_LIST_ITEMS + 1)]},
        "/profiles",
        f"at most {MAX_LIST_ITEMS}",
    ),
    (
        "too many managed accounts",
        {"managed_accounts": [f"a{i}" for i in range(MAX_LIST_ITEMS + 1)]},
        "/managed_accounts",
        f"at most {MAX_LIST_ITEMS}",
    ),
    (
        "a long profile id",
        {"profiles": ["p" * (MAX_ID_LENGTH + 1)]},
        "/profiles/0",
        f"at most {MAX_ID_LENGTH}",
    ),
    (
        "too many filters",
        {"filters": [cli_filter()] * (MAX_FILTERS + 1)},
        "/filters",
        f"at most {MAX_FILTERS}",
    ),
    (
        "too many tags",
        {"filters": [{"filter_type": "and", "tags_list": ["t"] * (MAX_TAGS_PER_FILTER + 1)}]},
        "/filters/0/tags_list",
        f"at most {MAX_TAGS_PER_FILTER}",
    ),
    (
        "a long cli",
        {"filters": [cli_filter("1" * (MAX_TEXT_LENGTH + 1))]},
        "/filters/0/cli",
        f"at most {MAX_TEXT_LENGTH}",
    ),
]


@pytest.mark.parametrize(
    ("fields", "pointer", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("path", [V1, V2])
def test_hostile_bodies_are_400_naming_field_and_reason(
    api: Api, path: str, fields: dict[str, Any], pointer: str, words: str
) -> None:
    headers = api.headers()
    response = api.client.post(path, json={**BODY, **fields}, headers=headers)
    assert response.status_code == 400, response.text
    first = response.json()["errors"][0]
    assert first["source"]["pointer"] == pointer
    assert words in first["detail"]
    assert api.client.get(V1, headers=headers).json() == []  # nothing was created


def test_the_limits_themselves_are_accepted(api: Api) -> None:
    body = {
        **BODY,
        "connections": list(range(MAX_LIST_ITEMS)),
        "profiles": ["p" * MAX_ID_LENGTH],
        "filters": [cli_filter("1" * MAX_TEXT_LENGTH)]
        + [{"filter_type": "and", "tags_list": ["t"] * MAX_TAGS_PER_FILTER}] * (MAX_FILTERS - 1),
    }
    response = api.client.post(V1, json=body, headers=api.headers())
    assert response.status_code == 200, response.text


def test_a_huge_bad_body_gets_a_bounded_answer(api: Api) -> None:
    """Every bad item of a list used to be one error: 100 at most now."""
    body = {**BODY, "record_types": [True] * MAX_LIST_ITEMS, "directions": ["up"] * 500}
    response = api.client.post(V1, json=body, headers=api.headers())
    assert response.status_code == 400
    assert len(response.json()["errors"]) == 100


def test_deep_ignored_fields_with_an_idempotency_key_are_no_500(api: Api) -> None:
    """v2 ignores unknown fields; one nested 1,000 deep must not break the body hash."""
    deep = "[" * 1000 + '"x"' + "]" * 1000
    body = '{"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-08T00:00:00Z", '
    body += f'"extra": {deep}}}'
    headers = {**api.headers(), "Idempotency-Key": "k-1", "Content-Type": "application/json"}
    for _ in range(2):
        response = api.client.post(V2, content=body.encode(), headers=headers)
        assert response.status_code in (200, 400), response.text
