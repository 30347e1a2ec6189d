"""Defensive reading (issue 10): a value stored before ingest checked it never breaks a report.

Ingest now refuses both cases below; lakes written by earlier versions may hold them.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.records import RECORD_SCHEMA
from mdr_reporting.domain.times import get_zone
from mdr_reporting.lake.base import Snapshot
from tests.unit.test_engine_rules import DAY, ENGINE, lake, rec, request


def report(tmp_path: Path, snapshot: Snapshot, timezone: str, fmt: str = "csv") -> bytes:
    out = tmp_path / f"report-{timezone.replace('/', '-')}.{fmt}"
    ENGINE.build(compile_query(request(timezone=timezone, format=fmt), ["acc"]), snapshot, out)
    return out.read_bytes()


@pytest.mark.parametrize("timezone", ["UTC", "America/Chicago"])
def test_far_off_timestamps_do_not_hold_or_break_a_build(tmp_path: Path, timezone: str) -> None:
    """Offsets were looked up day by day from year 1 to 9999: minutes for one report."""
    snapshot = lake(
        tmp_path,
        [
            rec("a"),
            rec("b", sent_at=datetime(1, 1, 1, tzinfo=UTC)),
            rec("c", completed_at=datetime(9999, 12, 31, tzinfo=UTC)),
        ],
    )
    for fmt in ("csv", "jsonl.gz", "parquet"):
        assert report(tmp_path, snapshot, timezone, fmt)
    rows = list(csv.DictReader(io.StringIO(report(tmp_path, snapshot, timezone).decode())))
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["created_at"] == DAY.replace(hour=1).astimezone(get_zone(timezone)).isoformat()
    assert rows[2]["completed_at"].startswith("9999-12-3")


def test_text_that_is_not_utf8_reads_as_a_replacement_character(tmp_path: Path) -> None:
    snapshot = lake(tmp_path, [rec("a"), rec("b")])
    path = snapshot.files[DAY.date()][0]
    table = pq.read_table(path, schema=RECORD_SCHEMA)
    raw = pa.array([b"\xff\xfe", b"+13125550100"], pa.binary())
    broken = pa.Array.from_buffers(pa.string(), 2, raw.buffers())  # as an old ingest stored it
    pq.write_table(table.set_column(table.schema.get_field_index("cli"), "cli", broken), path)
    rows = list(csv.DictReader(io.StringIO(report(tmp_path, snapshot, "UTC").decode())))
    assert [(r["id"], r["cli"]) for r in rows] == [("a", "\ufffd\ufffd"), ("b", "+13125550100")]
    assert report(tmp_path, snapshot, "UTC", "parquet")
