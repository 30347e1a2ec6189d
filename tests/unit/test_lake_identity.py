"""Issue 10, item 5 gaps: a version whose created_at crosses midnight is refused like a
same-day change, and the per-day id index is bounded in bytes, not at a fixed 8M rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mdr_reporting.ingest import Ingestor, InvalidRecords
from mdr_reporting.ingest.readers import parse_ndjson
from mdr_reporting.lake import LakeConflict
from mdr_reporting.lake.index import MIN_BUDGET_BYTES, DayIndex, default_budget
from mdr_reporting.lake.local import LocalLake
from tests.records import ndjson, record, table

# record(n) is created on 2026-03-01 at 09:00 + n seconds (UTC).
NEXT_DAY = "2026-03-02T00:30:00Z"
PREVIOUS_DAY = "2026-02-28T23:30:00Z"


def state(lake: LocalLake) -> tuple[int, int, int]:
    figures = lake.stats()
    return figures.version, figures.files, figures.rows


@pytest.mark.parametrize("moved_to", [NEXT_DAY, PREVIOUS_DAY])
def test_a_version_moved_to_another_utc_day_is_refused(tmp_path: Path, moved_to: str) -> None:
    lake = LocalLake(tmp_path)
    lake.append(table([record(0), record(1)]))
    before = state(lake)
    moved = record(1, created_at=moved_to, status="delivered", updated_at="2026-03-02T01:00:00Z")
    with pytest.raises(LakeConflict) as caught:
        lake.append(table([record(2), moved]))
    assert [(row, name) for row, name, _ in caught.value.rows] == [(1, "created_at")]
    assert state(lake) == before  # nothing of the batch


def test_moved_in_a_later_chunk_of_one_file_is_refused_too(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    with lake.writer() as writer:
        writer.add(table([record(0)]))
        with pytest.raises(LakeConflict):
            writer.add(table([record(0, created_at=NEXT_DAY, updated_at=NEXT_DAY)]))


def test_over_http_rules_it_is_a_row_problem(tmp_path: Path) -> None:
    from mdr_reporting.catalog import Catalog

    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    catalog.migrate()
    catalog.create_account("A", account_id="acct-a")
    ingestor = Ingestor(LocalLake(tmp_path / "lake"), catalog)
    ingestor.ingest_batch(parse_ndjson(ndjson([record(0)])), None)
    moved = record(0, created_at=NEXT_DAY, updated_at=NEXT_DAY, status="delivered")
    with pytest.raises(InvalidRecords) as caught:
        ingestor.ingest_batch(parse_ndjson(ndjson([record(1), moved])), None)
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "created_at")]
    catalog.close()


def test_a_new_id_next_to_midnight_is_fine(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.append(table([record(0)]))
    assert lake.append(table([record(1, created_at=NEXT_DAY)])).rows == 1


def _day_file(root: Path, day: int, rows: int) -> str:
    created = f"2026-03-{day:02d}T09:00:00Z"
    path = root / f"day-{day}.parquet"
    pq.write_table(table([record(i, created_at=created) for i in range(rows)]), path)
    return str(path)


def test_the_index_is_bounded_in_bytes_and_keeps_the_day_in_use(tmp_path: Path) -> None:
    assert default_budget() >= MIN_BUDGET_BYTES  # a share of memory, not a row count
    first, second = _day_file(tmp_path, 1, 300), _day_file(tmp_path, 2, 300)
    tiny = DayIndex(max_bytes=1)  # smaller than any day: the day in use stays anyway
    assert tiny.get(date(2026, 3, 1), [first]).num_rows == 300
    assert tiny.cached_rows == 300
    assert tiny.get(date(2026, 3, 2), [second]).num_rows == 300
    assert tiny.cached_rows == 300  # the older day went
    roomy = DayIndex(max_bytes=64 * 1024 * 1024)
    roomy.get(date(2026, 3, 1), [first])
    roomy.get(date(2026, 3, 2), [second])
    assert roomy.cached_rows == 600
