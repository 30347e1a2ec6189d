"""Streamed days (one file the lake laid out, one account): consecutive ones run as ONE
statement on the engine's long-lived database, with the bytes of the per-day path and of
the plain-Python reference, across offset changes, days of several files and several
accounts; and an IN list never reorders a scan that is written without ORDER BY."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mdr_reporting.domain.enums import RecordType
from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines import duckdb as engine_module
from mdr_reporting.engines.duckdb import DuckDBEngine
from mdr_reporting.lake.base import Snapshot
from tests.unit.lake_files import Record, around, layout, records, write_lake
from tests.unit.reference_report import reference_csv

SPRING = datetime(2024, 3, 10, 8, 0, tzinfo=UTC)  # America/Chicago springs forward
FALL = datetime(2024, 11, 3, 7, 0, tzinfo=UTC)  # America/Chicago falls back


def _messages(rng: random.Random, anchor: datetime, days: int, per_day: int) -> list[list[Record]]:
    """Messages around ``days`` anchors a day apart; an id is never reused (the lake keeps
    each id in one day)."""
    out = []
    for offset in range(days):
        for versions in records(rng, anchor + timedelta(days=offset), per_day):
            for version in versions:
                version["id"] = f"{version['id']}.{offset}"
            out.append(versions)
    return out


def _request(anchor: datetime, days: int, **changes: Any) -> ReportRequest:
    return around(
        anchor, 3, days + 3, "America/Chicago", **{"include_message_body": True, **changes}
    )


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every COPY statement the engine runs, from now on."""
    real_copy = engine_module._Days._copy
    statements: list[str] = []
    lock = threading.Lock()

    def counted(self: Any, cursor: Any, sql: str, params: Any) -> Any:
        if sql.startswith("COPY"):  # not the repeated-id probe of a day of several files
            with lock:
                statements.append(sql)
        return real_copy(self, cursor, sql, params)

    monkeypatch.setattr(engine_module._Days, "_copy", counted)
    return statements


def _build(
    engine: DuckDBEngine,
    snapshot: Snapshot,
    request: ReportRequest,
    accounts: tuple[str, ...],
    out: Path,
) -> bytes:
    engine.build(compile_query(request, accounts), snapshot, out)
    return out.read_bytes()


@pytest.mark.parametrize("anchor", [SPRING, FALL])
def test_streamed_days_run_as_one_statement_with_the_per_day_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anchor: datetime
) -> None:
    rng = random.Random(anchor.day)
    files = layout(rng, _messages(rng, anchor, 5, 120), most_files=1)
    snapshot = write_lake(tmp_path / "lake", files, laid_out=1.0)
    assert len(snapshot.files) >= 6
    request = _request(anchor, 5)
    statements = _counted(monkeypatch)
    grouped = _build(DuckDBEngine(), snapshot, request, ("acc-2",), tmp_path / "grouped.csv")
    assert len(statements) == 1  # every day of the window in one statement
    per_day = _build(
        DuckDBEngine(group_rows=1), snapshot, request, ("acc-2",), tmp_path / "per-day.csv"
    )
    assert len(statements) == 1 + len(snapshot.files)  # one statement a day
    expected = reference_csv(request, ("acc-2",), files)
    assert grouped == per_day == expected
    assert b"-06:00" in grouped and b"-05:00" in grouped  # the window crosses the change


def test_days_of_several_files_and_several_accounts_still_equal_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day of two files breaks a run of streamed days (it needs the latest-version
    pass); several accounts sort every day; csv.gz keeps one gzip member per day."""
    rng = random.Random(3)
    files = layout(rng, _messages(rng, SPRING, 6, 100), most_files=1)
    days = sorted(files)
    middle = days[len(days) // 2]
    rows = [row for part in files[middle] for row in part]
    files[middle] = [rows[::2], rows[1::2]]  # one day the lake has not merged yet
    snapshot = write_lake(tmp_path / "lake", files, laid_out=1.0)
    assert len(snapshot.files[middle]) == 2
    request = _request(SPRING, 6)
    statements = _counted(monkeypatch)
    engine = DuckDBEngine()
    for accounts in (("acc-1",), ("acc-1", "acc-3")):
        got = _build(engine, snapshot, request, accounts, tmp_path / "r.csv")
        assert got == reference_csv(request, accounts, files)
    assert len(statements) == 3 + len(snapshot.files)  # before, the day, after; every day
    import gzip

    zipped = _build(
        engine, snapshot, _request(SPRING, 6, format="csv.gz"), ("acc-1",), tmp_path / "r.gz"
    )
    assert gzip.decompress(zipped) == reference_csv(request, ("acc-1",), files)


def test_an_in_list_never_reorders_a_scan_written_without_order_by(tmp_path: Path) -> None:
    """Two record types are an IN list of five statuses, which DuckDB's optimizer would
    turn into a join that hands row groups over in any order (engines/duckdb.py)."""
    rng = random.Random(9)
    messages = records(rng, SPRING, 400)
    for versions in messages:
        for version in versions:
            version["account_id"] = "acc-1"
            if version["status"] not in ("sent", "queued", "sending"):
                version["status"] = "delivered"
    files = layout(rng, messages, most_files=1)
    snapshot = write_lake(tmp_path / "lake", files, laid_out=1.0)  # row groups of 7 rows
    request = _request(SPRING, 1, record_types=(RecordType.COMPLETE, RecordType.ERRORS))
    expected = reference_csv(request, ("acc-1",), files)
    engine = DuckDBEngine(threads=2)
    for attempt in range(12):
        got = _build(engine, snapshot, request, ("acc-1",), tmp_path / f"r{attempt}.csv")
        assert got == expected


def test_a_sorted_day_keeps_its_order_through_the_formatting_over_it(tmp_path: Path) -> None:
    """A day of several accounts is sorted on its stored values, in a subquery, and
    formatted after the sort (duckdb_sql.day_statement): over more rows than one DuckDB
    vector, on two threads, with the criteria inside the sort, the bytes stay the
    reference's, build after build."""
    rng = random.Random(21)
    messages = records(rng, FALL, 5000)
    files = layout(rng, messages, most_files=2)
    snapshot = write_lake(tmp_path / "lake", files, laid_out=1.0)
    accounts = ("acc-1", "acc-2", "acc-3")
    engine = DuckDBEngine(threads=2)
    for request in (
        _request(FALL, 1),
        _request(FALL, 1, record_types=(RecordType.COMPLETE, RecordType.ERRORS)),
    ):
        expected = reference_csv(request, accounts, files)
        assert expected.count(b"\r\n") > (2048 if request.record_types == tuple(RecordType) else 0)
        for attempt in range(4):
            got = _build(engine, snapshot, request, accounts, tmp_path / f"r{attempt}.csv")
            assert got == expected


def test_the_long_lived_database_serves_every_build_of_the_engine(tmp_path: Path) -> None:
    rng = random.Random(4)
    files = layout(rng, _messages(rng, FALL, 2, 50), most_files=1)
    snapshot = write_lake(tmp_path / "lake", files, laid_out=1.0)
    engine = DuckDBEngine()
    request = _request(FALL, 2)
    first = _build(engine, snapshot, request, ("acc-3",), tmp_path / "a.csv")
    database = engine.streaming_database()
    assert _build(engine, snapshot, request, ("acc-3",), tmp_path / "b.csv") == first
    assert engine.streaming_database() is database
    engine.close()
    assert _build(engine, snapshot, request, ("acc-3",), tmp_path / "c.csv") == first
    assert engine.streaming_database() is not database
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]


def test_a_local_footer_is_read_once_and_again_when_its_file_changes(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mdr_reporting.engines.lakefiles import footer

    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)
    first = footer(str(path))
    assert footer(str(path)) is first  # cached
    pq.write_table(pa.table({"a": [1, 2, 3, 4]}), path)
    assert footer(str(path)).num_rows == 4
