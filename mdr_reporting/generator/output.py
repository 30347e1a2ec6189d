"""Writing generated records as ``.parquet``, ``.ndjson`` or ``.csv``, each optionally ``.gz``.

Bytes are deterministic: DuckDB keeps row order when writing text, and gzip is
written with no name and a zero timestamp.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["FORMATS", "file_format", "write_records"]

FORMATS = ("ndjson", "csv", "parquet")
_TIME = "%Y-%m-%dT%H:%M:%S.%f+00:00"
_TIMESTAMPS = ("created_at", "updated_at", "sent_at", "completed_at")


def file_format(path: str | Path) -> tuple[str, bool]:
    """(format, gzipped) from a file name such as ``mdrs.ndjson.gz``."""
    name = Path(path).name.lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[:-3]
    for fmt in FORMATS:
        if name.endswith("." + fmt) or (fmt == "ndjson" and name.endswith(".jsonl")):
            return fmt, gzipped
    raise ValueError(f"{path}: the name must end in .ndjson, .csv or .parquet (optionally .gz)")


def write_records(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` (RECORD_SCHEMA) to ``path`` in the format its name says."""
    fmt, gzipped = file_format(path)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mdr-generate-") as scratch:
        plain = Path(scratch) / ("records." + fmt)
        if fmt == "parquet":
            pq.write_table(table, plain, compression="zstd", row_group_size=256 * 1024)
        else:
            _write_text(table, plain, fmt)
        if gzipped:
            packed = Path(scratch) / "records.gz"
            with (
                plain.open("rb") as source,
                packed.open("wb") as raw,
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as out,
            ):
                shutil.copyfileobj(source, out, 1024 * 1024)
            plain = packed
        os.replace(plain, target)


def _write_text(table: pa.Table, path: Path, fmt: str) -> None:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET enable_progress_bar = false")
        con.register("records", table)
        columns = []
        for name in table.column_names:
            if name in _TIMESTAMPS:
                columns.append(f"strftime({name}, '{_TIME}') AS {name}")
            elif name == "tags" and fmt == "csv":
                columns.append("array_to_string(tags, ';') AS tags")
            else:
                columns.append(name)
        options = "FORMAT json" if fmt == "ndjson" else "FORMAT csv, HEADER true"
        target = str(path).replace("'", "''")
        con.execute(f"COPY (SELECT {', '.join(columns)} FROM records) TO '{target}' ({options})")
    finally:
        con.close()
