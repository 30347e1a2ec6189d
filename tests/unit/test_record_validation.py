"""Record validation (api.md section 13): every rule names the line, the field and the reason."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from mdr_reporting.domain.validation import MAX_PROBLEMS, RowProblem, validate_records
from mdr_reporting.generator import generate
from mdr_reporting.ingest.readers import parse_json_array, parse_ndjson
from tests.records import ndjson, record


def check(rows: list[dict[str, Any]]) -> tuple[pa.Table | None, list[RowProblem]]:
    chunk = parse_ndjson(ndjson(rows))
    checked = validate_records(chunk.table, line_of=chunk.line_of, prior=chunk.prior)
    return checked.table, list(checked.problems)


def test_defaults_are_filled() -> None:
    row = record(0)
    del row["parts"], row["tags"]
    valid, problems = check([row])
    assert problems == [] and valid is not None
    out = valid.to_pylist()[0]
    assert out["message_type"] == "SMS" and out["parts"] == 1 and out["currency"] == "USD"
    assert out["tags"] == []
    assert out["updated_at"] == out["sent_at"]  # latest of created/sent/completed


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"id": "x" * 65}, "id", "1 to 64"),
        ({"id": ""}, "id", "required"),
        ({"account_id": None}, "account_id", "required"),
        ({"created_at": "2026-03-01T09:00:00"}, "created_at", "with offset"),
        ({"created_at": "2026-02-30T09:00:00Z"}, "created_at", "with offset"),
        ({"direction": "sideways"}, "direction", "inbound, outbound"),
        ({"cli": ""}, "cli", "required"),
        ({"cld": None}, "cld", "required"),
        ({"message_type": "FAX"}, "message_type", "SMS, MMS"),
        ({"parts": 0}, "parts", "at least 1"),
        ({"parts": "two"}, "parts", "integer"),
        ({"status": "lost"}, "status", "delivered"),
        ({"rate": "0.1234567"}, "rate", "6 decimal places"),
        ({"cost": "cheap"}, "cost", "decimal"),
        ({"currency": "US"}, "currency", "ISO 4217"),
        ({"tags": "otp"}, "tags", "list of strings"),
        ({"media_size_bytes": -1}, "media_size_bytes", ">= 0"),
        ({"direction": True}, "direction", "boolean"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_each_rule_names_line_field_and_reason(
    changes: dict[str, Any], field: str, reason: str
) -> None:
    valid, problems = check([record(0), record(1, **changes)])
    assert valid is None
    assert [(p.line, p.field) for p in problems] == [(2, field)]
    assert reason in problems[0].reason


def test_decimals_stay_exact_from_numbers_and_strings() -> None:
    body = (
        b'{"id":"a","account_id":"x","created_at":"2026-03-01T09:00:00Z","direction":"inbound",'
        b'"cli":"1","cld":"2","status":"received","rate":0.1,"cost":12345678901.123456}\n'
        b'{"id":"b","account_id":"x","created_at":"2026-03-01T09:00:00+05:30","direction":"inbound",'
        b'"cli":"1","cld":"2","status":"received","rate":"0.300000","cost":"1e-3"}\n'
    )
    chunk = parse_ndjson(body)
    valid = validate_records(chunk.table).table
    assert valid is not None
    assert valid.column("rate").to_pylist() == [Decimal("0.1"), Decimal("0.3")]
    assert valid.column("cost").to_pylist() == [Decimal("12345678901.123456"), Decimal("0.001")]
    assert valid.column("created_at")[1].as_py().isoformat() == "2026-03-01T03:30:00+00:00"


def test_exact_path_agrees_with_fast_path() -> None:
    """A line the fast JSON reader is never shown (leading blank) is still read the same."""
    body = ndjson([record(0, message_body="smile \U0001f600")]) + b"  " + ndjson([record(1)])
    chunk = parse_ndjson(body)
    fast = parse_ndjson(ndjson([record(0, message_body="smile \U0001f600"), record(1)]))
    exact = validate_records(chunk.table, line_of=chunk.line_of, prior=chunk.prior).table
    assert exact is not None
    assert exact.equals(validate_records(fast.table).table)


def test_json_types_are_strict() -> None:
    """A string is not an integer and a number is not a string (issue 10)."""
    rows = [record(0, error_code=30003), record(1, parts="2"), record(2, rate=1, cost="0.5")]
    valid, problems = check(rows)
    assert valid is None
    assert [(p.line, p.field, p.reason) for p in problems] == [
        (1, "error_code", "must be a string, got a number"),
        (2, "parts", "must be an integer, got a string"),
    ]


def test_blank_and_broken_lines_are_numbered_as_in_the_body() -> None:
    body = ndjson([record(0)]) + b"\n   \n" + ndjson([record(1, status="bad")])
    chunk = parse_ndjson(body)
    checked = validate_records(chunk.table, line_of=chunk.line_of, prior=chunk.prior)
    assert [(p.line, p.field) for p in checked.problems] == [(4, "status")]

    broken = ndjson([record(0)]) + b'{"id": "x",\n' + ndjson([record(2)])
    chunk = parse_ndjson(broken)
    checked = validate_records(chunk.table, line_of=chunk.line_of, prior=chunk.prior)
    assert [(p.line, p.field) for p in checked.problems] == [(2, "")]
    assert "JSON" in checked.problems[0].reason


def test_json_array_lines_are_positions() -> None:
    body = ndjson([record(0)]).rstrip()
    chunk = parse_json_array(
        b"[" + body + b", 7, " + body.replace(b'"status": "sent"', b'"status": "gone"') + b"]"
    )
    checked = validate_records(chunk.table, line_of=chunk.line_of, prior=chunk.prior)
    assert [(p.line, p.field) for p in checked.problems] == [(2, ""), (3, "status")]


def test_first_100_problems_in_line_order_and_the_total() -> None:
    rows = [record(i, direction="up", status="down") for i in range(80)]
    valid, problems = check(rows)
    assert valid is None and len(problems) == MAX_PROBLEMS
    assert problems[:2] == sorted(problems)[:2]
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    chunk = parse_ndjson(ndjson(rows))
    assert validate_records(chunk.table).problem_count == 160


def test_an_id_may_not_change_account_or_creation_within_a_batch() -> None:
    first = record(0)
    again = dict(first, account_id="acct-b", status="delivered")
    moved = dict(first, created_at="2026-03-01T10:00:00+00:00", status="delivered")
    valid, problems = check([first, again, moved])
    assert valid is None
    assert [(p.line, p.field) for p in problems] == [(2, "account_id"), (3, "created_at")]
    valid, problems = check([first, dict(first, status="delivered")])
    assert problems == []


def test_csv_text_columns_and_typed_parquet_columns() -> None:
    generated = generate(2_000, 5, 2, date(2026, 3, 1), seed=3)
    assert validate_records(generated).ok  # typed columns pass through
    text = pa.table(
        {
            name: pa.array(["a;b" if name == "tags" else v for v in col.to_pylist()], pa.string())
            if name == "tags"
            else generated.column(name).cast(pa.string())
            for name, col in zip(generated.column_names, generated.columns, strict=True)
        }
    )
    checked = validate_records(text)
    assert checked.table is not None
    assert checked.table.column("tags")[0].as_py() == ["a", "b"]
    assert checked.table.column("rate").equals(generated.column("rate"))


def test_a_million_rows_validate_in_seconds() -> None:
    rows = pa.concat_tables([generate(100_000, 20, 10, date(2026, 3, 1), seed=5)] * 10)
    started = time.perf_counter()
    assert validate_records(rows).ok
    assert time.perf_counter() - started < 15  # ~1-2 s on 2 idle cores; generous for CI
