"""`mdr ingest` of hostile and broken files (issue 10): a clear message, nothing stored.

In-process through click's CliRunner; the one case that crashed the process is run as
a subprocess in tests/acceptance/test_hostile_files.py.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mdr_reporting.cli.main import cli
from mdr_reporting.lake import open_lake
from tests.records import ndjson, record

GOOD = [record(i) for i in range(40)]


def ingest(tmp_path: Path, path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["ingest", str(path), "--create-accounts", "--data-dir", str(tmp_path / "data")]
    )
    return result.exit_code, result.output


def lake_rows(tmp_path: Path) -> int:
    return open_lake(f"file://{tmp_path / 'data' / 'lake'}").stats().rows


def parquet_bytes(rows: list[dict[str, object]], bad_cli_row: int | None = None) -> bytes:
    table = pa.Table.from_pylist(rows)
    if bad_cli_row is not None:
        values = [str(v).encode() for v in table.column("cli").to_pylist()]
        values[bad_cli_row] = b"\xff\xfe"
        raw = pa.array(values, pa.binary())
        text = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())  # no UTF-8 check
        table = table.set_column(table.schema.get_field_index("cli"), "cli", text)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def csv_bytes(rows: list[dict[str, object]]) -> bytes:
    names = [n for n in rows[0] if n != "tags"]
    lines = [",".join(names)] + [",".join(str(r[n]) for n in names) for r in rows]
    return ("\n".join(lines) + "\n").encode()


GOOD_PARQUET = parquet_bytes(GOOD)
GOOD_CSV = csv_bytes(GOOD)
GOOD_NDJSON = ndjson(GOOD)

# name, bytes, words the message must hold
CASES = [
    ("null.ndjson", b"null\n", "line 1: record: expected a JSON object, got null"),
    ("deep.ndjson", b"[" * 100_000 + b"\n", "line 1: record: not valid JSON: nested too deeply"),
    (
        "utf8.ndjson",
        GOOD_NDJSON + json.dumps(record(99, cli="@")).encode().replace(b'"@"', b'"\xff"') + b"\n",
        "line 41: cli: is not valid UTF-8 text",
    ),
    ("parts.ndjson", ndjson([record(0, parts="2")]), "line 1: parts: must be an integer"),
    (
        "year.ndjson.gz",
        gzip.compress(ndjson([record(0, created_at="0001-01-01T00:00:00Z")])),
        "line 1: created_at: must be in the years 1970 to 9000",
    ),
    ("utf8.parquet", parquet_bytes(GOOD, bad_cli_row=7), "line 8: cli: is not valid UTF-8 text"),
    (
        "utf8.csv",
        GOOD_CSV.replace(b"+13125550100", b"+1312\xfe", 1),
        "line 2: cli: is not valid UTF-8 text",
    ),
    ("ragged.csv", GOOD_CSV + b"a,b\n", "not valid CSV"),
    ("trunc.ndjson.gz", gzip.compress(GOOD_NDJSON)[:-40], "cannot read: the file ends early"),
    ("trunc.csv.gz", gzip.compress(GOOD_CSV)[:-40], "cannot read: the file ends early"),
    ("noise.ndjson.gz", b"\x1f\x8b" + os.urandom(64), "cannot read"),
    ("trunc.parquet", GOOD_PARQUET[: len(GOOD_PARQUET) // 2], "cannot read"),
    ("trunc.parquet.gz", gzip.compress(GOOD_PARQUET[:300]), "cannot read"),
    ("magic.parquet", b"PAR1" + os.urandom(64) + b"PAR1", "cannot read"),
    ("empty.parquet", b"", "cannot read"),
]


@pytest.mark.parametrize(("name", "data", "message"), CASES, ids=[c[0] for c in CASES])
def test_broken_files_are_one_clear_message_and_store_nothing(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    code, output = ingest(tmp_path, path)
    assert code in (1, 2), output
    assert message in output
    assert "Traceback" not in output and "nothing" in output
    assert lake_rows(tmp_path) == 0


def test_good_files_of_every_format_still_go_in(tmp_path: Path) -> None:
    for name, data in (
        ("a.ndjson", GOOD_NDJSON),
        ("b.csv", GOOD_CSV),
        ("c.parquet", GOOD_PARQUET),
        ("d.ndjson.gz", gzip.compress(GOOD_NDJSON)),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        code, output = ingest(tmp_path, path)
        assert code == 0, output
    assert lake_rows(tmp_path) == len(GOOD)
