"""Days share DuckDB's memory limit: as many run at once as their estimates allow, and a day
that still runs out of memory beside another is built again alone."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mdr_reporting.domain.query import compile_query
from mdr_reporting.engines import duckdb as engine_module
from mdr_reporting.engines.duckdb import DuckDBEngine, day_memory, memory_bytes
from mdr_reporting.engines.lakefiles import DayFacts, day_facts
from tests.unit.lake_files import around, day_statement_flags, layout, records, write_lake

ANCHOR = datetime(2024, 3, 10, 7, 0, tzinfo=UTC)


def test_out_of_memory_day_is_rebuilt_alone_and_the_file_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(5)
    snapshot = write_lake(tmp_path / "lake", layout(rng, records(rng, ANCHOR, 400)))
    request = around(ANCHOR, 3, 3, "America/Chicago", include_message_body=True)
    query = compile_query(request, ["acc-1", "acc-2"])
    engine = DuckDBEngine(parallel_days=2)
    expected = engine.build(query, snapshot, tmp_path / "expected.csv")
    assert expected.rows > 0

    real_copy = engine_module._Days._copy
    calls: list[str] = []
    runs: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def flaky_copy(self: Any, cursor: Any, sql: str, params: Any) -> Any:
        with lock:
            calls.append(sql)
            first = len(calls) == 1
        if first:  # the first day finds the memory limit used up by its neighbour
            raise duckdb.OutOfMemoryException("Out of Memory Error: failed to pin block")
        runs.append((sql, self.memory.free == 0))
        return real_copy(self, cursor, sql, params)

    monkeypatch.setattr(engine_module._Days, "_copy", flaky_copy)
    got = engine.build(query, snapshot, tmp_path / "got.csv")
    assert got.rows == expected.rows
    assert (tmp_path / "got.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
    assert (calls[0], True) in runs  # the day that failed was built again alone
    assert len(runs) == len(calls) - 1  # every other day ran once, as planned


def _overlap(engine: DuckDBEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    """The most days that ran at once while ``engine`` built a six-day report."""
    rng = random.Random(11)
    messages = [
        versions
        for offset in range(6)
        for versions in records(rng, ANCHOR + timedelta(days=offset), 150)
    ]
    snapshot = write_lake(tmp_path / "lake", layout(rng, messages), laid_out=1.0)
    request = around(ANCHOR, 3, 9)
    query = compile_query(request, ["acc-1", "acc-2"])  # two accounts: every day sorts
    real_copy = engine_module._Days._copy
    running = [0]
    most = [0]
    lock = threading.Lock()

    def watched_copy(self: Any, cursor: Any, sql: str, params: Any) -> Any:
        if not sql.startswith("COPY"):  # a day's repeated-id probe: not a day's build
            return real_copy(self, cursor, sql, params)
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.05)  # long enough for the other thread to start its day
            return real_copy(self, cursor, sql, params)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(engine_module._Days, "_copy", watched_copy)
    assert engine.build(query, snapshot, tmp_path / "report.csv").rows > 0
    return most[0]


def test_days_run_together_only_when_their_estimates_fit_the_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    roomy = DuckDBEngine(memory_limit="256MB", parallel_days=2)
    assert _overlap(roomy, monkeypatch, tmp_path / "roomy") == 2
    # A limit below two days' estimates (tens of kB each here): one day at a time.
    tight = DuckDBEngine(memory_limit="256MB", parallel_days=2)
    monkeypatch.setattr(engine_module, "memory_bytes", lambda limit: 12_000)
    assert _overlap(tight, monkeypatch, tmp_path / "tight") == 1


def test_day_memory_follows_the_work_the_statement_does() -> None:
    facts = DayFacts(
        files=1, laid_out=True, folded=True, time_range=None, rows=100_000, bytes=20_000_000
    )
    streamed = day_memory(facts, unique=True, ordered=True)
    sorted_ = day_memory(facts, unique=True, ordered=False)
    latest = day_memory(facts, unique=False, ordered=False)
    assert streamed < sorted_ < latest
    assert sorted_ >= facts.bytes


@pytest.mark.parametrize(
    ("text", "size"),
    [("512MB", 512_000_000), ("1GiB", 2**30), ("2 GB", 2_000_000_000), ("100kb", 100_000)],
)
def test_memory_limits_read_as_duckdb_reads_them(text: str, size: int) -> None:
    assert memory_bytes(text) == size


def test_a_memory_limit_that_is_no_size_is_refused() -> None:
    with pytest.raises(ValueError, match="not a memory size"):
        memory_bytes("lots")


def test_day_facts_count_the_accounts_the_footers_admit(tmp_path: Path) -> None:
    """Row-group statistics of account_id tell which of a report's accounts a laid-out file
    may hold; the engine streams a day in file order when only one is admitted."""
    path = tmp_path / "day.parquet"
    times = [datetime(2024, 5, 1, n, tzinfo=UTC) for n in range(8)]
    table = pa.table(
        {
            "account_id": ["a-1"] * 4 + ["a-2"] * 4,
            **{name: times for name in ("created_at", "sent_at", "completed_at")},
        }
    )
    pq.write_table(table, path, row_group_size=4)
    assert day_facts([str(path)], ["a-1"]).admitted == 1
    assert day_facts([str(path)], ["a-1", "a-0", "b"]).admitted == 1  # absent ones: not admitted
    assert day_facts([str(path)], ["a-1", "a-2"]).admitted == 2
    assert day_facts([str(path)], ["a-0"]).admitted == 0
    assert day_facts([str(path)]).admitted is None
    pq.write_table(table, path, row_group_size=8)  # one group spanning a-1..a-2
    assert day_facts([str(path)], ["a-1", "a-15"]).admitted == 2


def test_a_report_whose_other_accounts_hold_no_records_is_not_sorted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent's own account beside the one it manages: each laid-out one-file day is read
    in file order (no ORDER BY), as for one account."""
    seen = day_statement_flags(monkeypatch, "ordered")
    anchor = datetime(2024, 5, 1, tzinfo=UTC)
    files = layout(random.Random(3), records(random.Random(3), anchor, 300), most_files=1)
    snapshot = write_lake(tmp_path / "lake", files, laid_out=1.0)
    request = around(anchor, 2, 3)
    DuckDBEngine().build(compile_query(request, ["acc-2", "parent"]), snapshot, tmp_path / "r")
    assert seen and all(seen)
    seen.clear()
    DuckDBEngine().build(compile_query(request, ["acc-2", "acc-3"]), snapshot, tmp_path / "r")
    assert seen and not any(seen)


def test_a_build_of_several_sorted_days_runs_each_statement_on_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Days run side by side on the cores; a sort on several threads costs more CPU and
    memory.  A one-day report keeps every thread for its one statement."""
    configs: list[dict[str, Any]] = []
    connect = engine_module._connect

    def spy(config: dict[str, Any]) -> Any:
        configs.append(config)
        return connect(config)

    monkeypatch.setattr(engine_module, "_connect", spy)
    anchor = datetime(2024, 5, 1, tzinfo=UTC)
    files = layout(random.Random(5), records(random.Random(5), anchor, 300), most_files=1)
    snapshot = write_lake(tmp_path / "lake", files, laid_out=1.0)

    def built(days: int) -> dict[str, Any]:
        configs.clear()
        request = around(anchor, days // 2, days - days // 2)
        query = compile_query(request, ["acc-1", "acc-2"])  # two accounts: days sort
        DuckDBEngine().build(query, snapshot, tmp_path / "r.csv")
        (own,) = [c for c in configs if c.get("temp_directory")]
        return own

    assert built(4)["threads"] == 1
    assert "threads" not in built(1)
