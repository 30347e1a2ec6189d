"""The Spark engine on a real standalone cluster (two workers): against the plain-Python
reference and byte for byte against the DuckDB engine.

Spark's fixed cost per job is seconds, so each test builds many reports in one
job (:meth:`SparkEngine.build_many`) and compares them one by one.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.filters import Filter
from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines.duckdb import DuckDBEngine
from mdr_reporting.engines.spark import Job, SparkEngine
from tests.unit.lake_files import layout, records, write_lake
from tests.unit.reference_report import reference_csv
from tests.unit.test_engine_reference import seeded_cases

DUCKDB = DuckDBEngine(memory_limit="256MB", threads=2)
# A Spark job on a busy 2-core machine can take minutes (the first one also starts executors).
pytestmark = pytest.mark.timeout(900)


def test_spark_csv_equals_reference_on_random_cases(
    spark_engine: SparkEngine, tmp_path: Path
) -> None:
    """Random lakes, requests, zones (DST), Greek and Turkish sender ids, hostile bodies:
    every report of one Spark job equals the reference, and the DuckDB engine's file."""
    cases = seeded_cases(10, seed=11)
    jobs, expected = [], []
    for index, case in enumerate(cases):
        files = layout(case.layout_rng, case.messages)
        snapshot = write_lake(tmp_path / f"lake-{index}", files, legacy=random.Random(case.seed))
        query = compile_query(case.request, case.accounts)
        jobs.append(Job(query, snapshot, tmp_path / f"spark-{index}.csv"))
        expected.append(reference_csv(case.request, case.accounts, files))
    results = spark_engine.build_many(jobs)
    for case, job, result, wanted in zip(cases, jobs, results, expected, strict=True):
        produced = job.destination.read_bytes()
        assert produced.decode() == wanted.decode(), case
        rows = len(list(csv.reader(io.StringIO(wanted.decode(), newline="")))) - 1
        assert (result.rows, result.size_bytes) == (rows, len(produced)), case
        DUCKDB.build(job.query, job.snapshot, tmp_path / "duck.csv")
        assert (tmp_path / "duck.csv").read_bytes() == produced, case
    assert sum(r.rows for r in results) > 30


def _dst_lake(tmp_path: Path, anchor: datetime, seed: int) -> tuple[object, ReportRequest]:
    rng = random.Random(seed)
    snapshot = write_lake(tmp_path / f"lake-{seed}", layout(rng, records(rng, anchor, 250)))
    request = ReportRequest(
        start_time=anchor - timedelta(days=2),
        end_time=anchor + timedelta(days=2),
        timezone={0: "America/Chicago", 1: "Europe/London", 2: "Australia/Lord_Howe"}[seed % 3],
        directions=tuple(Direction),
        record_types=tuple(RecordType),
        include_message_body=True,  # quotes, CR, LF, JSON, emoji, leading spaces
        filters=(Filter("and", "cli", match="contains", value="ος"),) if seed == 3 else (),
    )
    return snapshot, request


@pytest.mark.parametrize("fmt", ["csv.gz", "jsonl.gz"])
def test_compressed_formats_are_byte_identical_to_duckdb(
    spark_engine: SparkEngine, tmp_path: Path, fmt: str
) -> None:
    anchors = [
        datetime(2024, 3, 10, 8, 0, tzinfo=UTC),  # Chicago springs forward
        datetime(2024, 10, 27, 1, 0, tzinfo=UTC),  # London falls back
        datetime(2024, 4, 6, 15, 0, tzinfo=UTC),  # Lord Howe, half an hour back
        datetime(2024, 6, 1, 0, 0, tzinfo=UTC),
    ]
    jobs = []
    for seed, anchor in enumerate(anchors):
        snapshot, request = _dst_lake(tmp_path, anchor, seed)
        query = compile_query(dataclasses.replace(request, format=fmt), ("acc-1", "acc-2"))
        jobs.append(Job(query, snapshot, tmp_path / f"spark-{seed}.{fmt}"))  # type: ignore[arg-type]
    results = spark_engine.build_many(jobs)
    for job, result in zip(jobs, results, strict=True):
        duck = DUCKDB.build(job.query, job.snapshot, tmp_path / f"duck.{fmt}")
        ours = gzip.decompress(job.destination.read_bytes())
        assert ours == gzip.decompress((tmp_path / f"duck.{fmt}").read_bytes())
        assert result.rows == duck.rows
        assert result.size_bytes == job.destination.stat().st_size
    assert sum(r.rows for r in results) > 300


def test_parquet_holds_the_duckdb_engines_rows_and_schema(
    spark_engine: SparkEngine, tmp_path: Path
) -> None:
    snapshot, request = _dst_lake(tmp_path, datetime(2024, 11, 3, 7, 0, tzinfo=UTC), 0)
    query = compile_query(dataclasses.replace(request, format="parquet"), ("acc-1", "acc-3"))
    result = spark_engine.build(query, snapshot, tmp_path / "spark.parquet")  # type: ignore[arg-type]
    duck = DUCKDB.build(query, snapshot, tmp_path / "duck.parquet")  # type: ignore[arg-type]
    ours, theirs = (
        pq.read_table(tmp_path / "spark.parquet"),
        pq.read_table(tmp_path / "duck.parquet"),
    )
    assert ours.schema == theirs.schema
    assert ours.equals(theirs)
    assert result.rows == duck.rows == ours.num_rows > 50
