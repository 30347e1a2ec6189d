"""`mdr ingest` shows progress from the start: the first block of a file is small."""

from __future__ import annotations

from pathlib import Path

from mdr_reporting.ingest.readers import FIRST_CHUNK_BYTES, read_file
from tests.records import ndjson, record


def test_the_first_chunk_of_a_big_file_is_small(tmp_path: Path) -> None:
    path = tmp_path / "big.ndjson"
    path.write_bytes(ndjson([record(i) for i in range(12_000)]))
    assert path.stat().st_size > 2 * FIRST_CHUNK_BYTES
    chunks = read_file(path)
    first = next(chunks)
    assert 0 < first.consumed <= FIRST_CHUNK_BYTES
    rest = list(chunks)
    assert first.table.num_rows + sum(c.table.num_rows for c in rest) == 12_000
    assert rest[-1].consumed == path.stat().st_size
