"""csv.gz, jsonl.gz and parquet carry exactly the rows and values of the CSV report."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.domain.times import get_zone
from mdr_reporting.engines.duckdb import DuckDBEngine
from mdr_reporting.engines.outputs import report_arrow_schema
from mdr_reporting.lake.base import Snapshot
from tests.unit.lake_files import layout, records, write_lake

ENGINE = DuckDBEngine(memory_limit="256MB", threads=2)
ANCHOR = datetime(2024, 11, 3, 7, 0, tzinfo=UTC)
ZONE = "America/Chicago"


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    rng = random.Random(11)
    return write_lake(tmp_path_factory.mktemp("lake"), layout(rng, records(rng, ANCHOR, 300)))


def _request(fmt: str, end: datetime = ANCHOR + timedelta(days=2)) -> ReportRequest:
    return ReportRequest(
        start_time=ANCHOR - timedelta(days=2),
        end_time=end,
        timezone=ZONE,
        directions=tuple(Direction),
        record_types=tuple(RecordType),
        include_message_body=True,
        format=fmt,
    )


def _build(snapshot: Snapshot, tmp: Path, fmt: str, **kw: Any) -> tuple[Path, int]:
    out = tmp / f"report.{fmt}"
    result = ENGINE.build(compile_query(_request(fmt, **kw), ["acc-1", "acc-2"]), snapshot, out)
    assert result.size_bytes == out.stat().st_size
    return out, result.rows


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode(), newline="")))


def _cell(name: str, value: Any) -> str:
    """A typed value written as the CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(get_zone(ZONE)).isoformat()
    if isinstance(value, Decimal):
        return f"{value:.6f}"
    if isinstance(value, list):
        return ";".join(value)
    assert isinstance(value, str | int), name
    return str(value)


def test_csv_gz_is_the_gzip_of_the_csv(snapshot: Snapshot, tmp_path: Path) -> None:
    plain, rows = _build(snapshot, tmp_path, "csv")
    packed, packed_rows = _build(snapshot, tmp_path, "csv.gz")
    assert rows > 100
    assert packed_rows == rows
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()


def test_jsonl_gz_carries_the_same_rows(snapshot: Snapshot, tmp_path: Path) -> None:
    expected = _csv_rows(_build(snapshot, tmp_path, "csv")[0])
    path, rows = _build(snapshot, tmp_path, "jsonl.gz")
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    objects = [json.loads(line) for line in lines]
    assert rows == len(objects) == len(expected)
    for obj, row in zip(objects, expected, strict=True):
        assert list(obj) == list(row)
        assert isinstance(obj["rate"], str | None)  # decimals as strings, never floats
        assert isinstance(obj["tags"], list)
        assert {name: _cell(name, value) for name, value in obj.items()} == row


def test_parquet_carries_the_same_rows_typed(snapshot: Snapshot, tmp_path: Path) -> None:
    expected = _csv_rows(_build(snapshot, tmp_path, "csv")[0])
    path, rows = _build(snapshot, tmp_path, "parquet")
    table = pq.read_table(path)
    assert table.schema == report_arrow_schema(tuple(expected[0]))
    got = table.to_pylist()
    assert rows == len(got) == len(expected)
    for obj, row in zip(got, expected, strict=True):
        assert {name: _cell(name, value) for name, value in obj.items()} == row


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "jsonl.gz", "parquet"])
def test_empty_reports_are_valid_files(snapshot: Snapshot, tmp_path: Path, fmt: str) -> None:
    path, rows = _build(snapshot, tmp_path, fmt, end=ANCHOR - timedelta(days=2, seconds=-1))
    assert rows == 0
    if fmt == "parquet":
        assert pq.read_table(path).num_rows == 0
    elif fmt == "jsonl.gz":
        assert gzip.decompress(path.read_bytes()) == b""
    else:
        data = path.read_bytes()
        text = gzip.decompress(data) if fmt == "csv.gz" else data
        assert text.count(b"\r\n") == 1
        assert text.startswith(b"id,created_at,")
