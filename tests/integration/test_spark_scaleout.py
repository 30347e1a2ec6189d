"""The Spark engine scaled out: over an S3 lake (footers by ranged GETs, a clear line
when the cluster lacks hadoop-aws) and cancelled while a job runs (standalone cluster)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import obstore
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import parse_v1
from mdr_reporting.domain.validation import validate_records
from mdr_reporting.engines.base import Cancelled
from mdr_reporting.engines.lakefiles import (
    TIMESTAMP_COLUMNS,
    has_folded_numbers,
    metadata_rows,
    timestamp_range,
)
from mdr_reporting.engines.spark import SparkEngine, SparkUnavailable
from mdr_reporting.generator import generate
from mdr_reporting.lake.local import LocalLake
from mdr_reporting.lake.s3 import S3Lake
from mdr_reporting.objectstore import S3Location
from mdr_reporting.settings import load_settings
from mdr_reporting.worker.lake_builder import estimated_rows
from mdr_reporting.worker.runtime import report_builder

pytestmark = pytest.mark.timeout(900)  # Spark on a busy 2-core machine can take minutes

START = date(2026, 3, 1)


def _records(count: int, accounts: int = 3, days: int = 2):  # type: ignore[no-untyped-def]
    table = validate_records(generate(count, accounts, days, START, seed=5)).table
    assert table is not None
    return table


def _query(accounts: list[str], end_day: int = 3):  # type: ignore[no-untyped-def]
    spec = parse_v1(
        {"start_time": "2026-03-01T00:00:00Z", "end_time": f"2026-03-0{end_day}T00:00:00Z"},
        datetime(2026, 3, 9, tzinfo=UTC),
    )
    return compile_query(spec, accounts)


@pytest.fixture
def s3_lake(s3_endpoint: str, s3_bucket: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    catalog_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(catalog_url)
    catalog.migrate()
    catalog.close()
    lake = S3Lake(S3Location(s3_bucket, "lake", s3_endpoint), catalog_url)
    yield lake
    lake.close()


def test_footers_of_an_s3_lake_are_read_from_the_objects(s3_lake: S3Lake) -> None:
    table = _records(60_000)
    s3_lake.append(table)
    snapshot = s3_lake.snapshot()
    try:
        files = [f for day in sorted(snapshot.files) for f in snapshot.files[day]]
        assert files and all(f.startswith("s3://") for f in files)
        assert snapshot.open is not None
        assert has_folded_numbers(files, snapshot.open)
        stored = pa.concat_tables(s3_lake._read_table(s3_lake.location.key(f)) for f in files)
        assert metadata_rows(files, snapshot.open) == stored.num_rows
        stamps = [stored.column(name) for name in TIMESTAMP_COLUMNS]
        low = min(pc.min(c).as_py() for c in stamps)
        high = max(pc.max(c).as_py() for c in stamps)
        found = timestamp_range(files, snapshot.open)
        assert found is not None
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        assert found == ((low - epoch) // low.resolution, (high - epoch) // high.resolution)
        # MDR_ENGINE=auto's estimate counts the row groups that may hold the accounts.
        accounts = sorted(set(stored.column("account_id").to_pylist()))
        counts = pc.value_counts(stored.column("account_id")).to_pylist()
        smallest = min(counts, key=lambda c: c["counts"])
        estimate = estimated_rows(_query([smallest["values"]]), snapshot)
        assert smallest["counts"] <= estimate < stored.num_rows
        assert estimated_rows(_query(accounts), snapshot) == stored.num_rows
        # A footer is read once per object (keys never name new content).
        obstore.delete(s3_lake.store, s3_lake.location.key(files[0]))
        assert metadata_rows(files, snapshot.open) == stored.num_rows
    finally:
        s3_lake.release(snapshot)
    fresh = s3_lake.snapshot()
    try:
        gone = s3_lake.location.url("data/2026-03-01/part-0-missing.parquet")
        with pytest.raises(FileNotFoundError, match="lake object is gone"):
            metadata_rows([gone], fresh.open)
    finally:
        s3_lake.release(fresh)


def test_spark_over_an_s3_lake_without_hadoop_aws_fails_with_one_line(
    spark_engine: SparkEngine, s3_lake: S3Lake, tmp_path: Path
) -> None:
    s3_lake.append(_records(2_000))
    snapshot = s3_lake.snapshot()
    destination = tmp_path / "report.csv"
    try:
        with pytest.raises(SparkUnavailable) as raised:
            spark_engine.build(_query(["acct-01"]), snapshot, destination)
    finally:
        s3_lake.release(snapshot)
    message = str(raised.value)
    assert "\n" not in message and "\tat " not in message
    assert "org.apache.hadoop.fs.s3a.S3AFileSystem" in message
    assert "org.apache.hadoop:hadoop-aws:3." in message and "docs/deploy.md" in message
    assert not destination.exists()


def test_the_worker_passes_the_s3_settings_to_spark(
    spark_cluster: object, s3_lake: S3Lake, tmp_path: Path
) -> None:
    endpoint = s3_lake.location.endpoint_url
    settings = load_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "engine": "spark",
            "spark_master": spark_cluster.master_url,  # type: ignore[attr-defined]
            "spark_conf": "spark.hadoop.fs.s3a.path.style.access=false",
            "s3_endpoint_url": endpoint,
        },
        environ={},
    )
    builder = report_builder(settings, s3_lake)
    conf = builder.engine.conf  # type: ignore[attr-defined]
    assert conf["spark.hadoop.fs.s3a.endpoint"] == endpoint
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "false"  # the deployment's


def test_cancelling_stops_a_running_spark_job(spark_engine: SparkEngine, tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    lake.append(_records(150_000, accounts=2, days=3))
    snapshot = lake.snapshot()
    tracker = spark_engine.session().sparkContext.statusTracker()
    running: list[int] = []
    asked_at: list[float] = []

    def cancelled() -> bool:
        """A DELETE arrives as soon as a Spark job of the build runs."""
        if not running:
            running.extend(tracker.getActiveJobsIds())
            if running:
                asked_at.append(time.monotonic())
        return bool(running)

    destination = tmp_path / "report.csv"
    engine = SparkEngine(spark_engine.master, spark_engine.conf, cancel_poll_seconds=0.2)
    engine._spark = spark_engine.session()  # the session of the one cluster of the run
    with pytest.raises(Cancelled):
        engine.build(
            _query(["acct-01", "acct-02"], end_day=4), snapshot, destination, cancelled=cancelled
        )
    stopped = time.monotonic() - asked_at[0]
    assert not destination.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]
    statuses = {str(tracker.getJobInfo(job).status) for job in running}
    assert statuses == {"FAILED"}, statuses  # cancelled, not finished
    assert stopped < 60, stopped
    assert not tracker.getActiveJobsIds()
    assert threading.active_count() < 50
