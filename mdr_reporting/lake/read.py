"""Reading a day of the lake with the latest version of each id (api.md section 6).

Engines call :func:`latest_versions_sql` on one day's files: every version of a
message lives in its ``created_at`` day, so resolving one day at a time is exact.
A tie on ``updated_at`` (which the lake never stores, but a foreign writer might)
goes to the earlier file: file names sort in commit order.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from mdr_reporting.domain.records import RECORD_SCHEMA

__all__ = ["latest_versions_sql", "read_latest", "sql_string"]


def sql_string(text: str) -> str:
    """A DuckDB string literal (file paths cannot be bound as parameters of read_parquet)."""
    return "'" + text.replace("'", "''") + "'"


def latest_versions_sql(files: Sequence[str]) -> str:
    """A DuckDB SELECT over one day's ``files`` keeping the latest version of each id.

    A single file never holds two versions of an id (the lake writes a batch's
    winners only, and compaction writes one row per id), so it is read as is.
    """
    if not files:
        raise ValueError("a day has at least one file")
    listed = "[" + ", ".join(sql_string(path) for path in files) + "]"
    if len(files) == 1:
        return f"SELECT * FROM read_parquet({listed}, hive_partitioning = false)"
    return (
        f"SELECT * EXCLUDE (filename) FROM read_parquet({listed}, filename = true, "
        "hive_partitioning = false) "
        "QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC, filename) = 1"
    )


def read_latest(
    files: Sequence[str], *, order: bool = True, connection: duckdb.DuckDBPyConnection | None = None
) -> pa.Table:
    """One day's records, latest versions only, as RECORD_SCHEMA (sorted by account and time)."""
    con = connection or duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        sql = latest_versions_sql(files)
        if order:
            sql = f"SELECT * FROM ({sql}) ORDER BY account_id, created_at, id"
        table = con.sql(sql).to_arrow_table()
    finally:
        if connection is None:
            con.close()
    return table.select(RECORD_SCHEMA.names).cast(RECORD_SCHEMA)
