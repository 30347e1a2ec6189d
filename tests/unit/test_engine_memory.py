"""A day that runs out of DuckDB's memory limit beside another day is built again alone."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines import duckdb as engine_module
from mdr_reporting.engines.duckdb import DuckDBEngine
from tests.unit.lake_files import layout, records, write_lake

ANCHOR = datetime(2024, 3, 10, 7, 0, tzinfo=UTC)


def test_out_of_memory_day_is_rebuilt_alone_and_the_file_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(5)
    snapshot = write_lake(tmp_path / "lake", layout(rng, records(rng, ANCHOR, 400)))
    request = ReportRequest(
        start_time=ANCHOR - timedelta(days=3),
        end_time=ANCHOR + timedelta(days=3),
        timezone="America/Chicago",
        directions=tuple(Direction),
        record_types=tuple(RecordType),
        include_message_body=True,
    )
    query = compile_query(request, ["acc-1", "acc-2"])
    engine = DuckDBEngine(parallel_days=2)
    expected = engine.build(query, snapshot, tmp_path / "expected.csv")
    assert expected.rows > 0

    real_copy = engine_module._Days._copy
    calls: list[int] = []
    alone: list[bool] = []
    lock = threading.Lock()

    def flaky_copy(self: Any, cursor: Any, sql: str, params: Any) -> Any:
        with lock:
            calls.append(1)
            first = len(calls) == 1
        if first:  # the first day finds the memory limit used up by its neighbour
            raise duckdb.OutOfMemoryException("Out of Memory Error: failed to pin block")
        alone.append(self.solo.locked())
        return real_copy(self, cursor, sql, params)

    monkeypatch.setattr(engine_module._Days, "_copy", flaky_copy)
    got = engine.build(query, snapshot, tmp_path / "got.csv")
    assert got.rows == expected.rows
    assert (tmp_path / "got.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
    assert alone and alone[-1] is True  # after the failure, days were built alone
