"""The whole path as a user runs it: generate, ingest, serve, request, wait, download, compare.

The expected file comes from the independent reference implementation of api.md
sections 4-7 (tests/unit/reference_report.py) over the generated records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mdr_reporting.domain.requests import parse_v1
from tests.acceptance.helpers import reports_key, run_mdr, running_server
from tests.conftest import POSTGRES_URL, postgres_schema_url
from tests.unit.reference_report import reference_csv


@pytest.fixture(params=["local", *(["s3-postgresql"] if POSTGRES_URL else [])])
def backends(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The settings of each layout: all local, or scaled out (PostgreSQL catalog, S3 lake
    and report files on moto)."""
    if request.param == "local":
        yield {}
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    catalogs = postgres_schema_url()
    yield {
        "MDR_CATALOG_URL": next(catalogs),
        "MDR_LAKE_URL": f"s3://{bucket}/lake",
        "MDR_FILES_URL": f"s3://{bucket}/reports",
        "MDR_S3_ENDPOINT_URL": endpoint,
        "MDR_WITH_WORKER": "true",
    }
    next(catalogs, None)


def test_generate_ingest_request_download_matches_the_reference(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    data = tmp_path / "data"
    generated = tmp_path / "traffic.parquet"
    made = run_mdr(
        "generate",
        "--records",
        "4000",
        "--accounts",
        "3",
        "--days",
        "4",
        "--start",
        "2026-03-06",
        "--seed",
        "7",
        "--out",
        str(generated),
        data_dir=None,
    )
    assert made.returncode == 0, made.stderr
    loaded = run_mdr("ingest", str(generated), "--create-accounts", data_dir=data, env=backends)
    assert loaded.returncode == 0, loaded.stderr
    key = reports_key(data, "acct-01", env=backends)

    body = {
        "start_time": "2026-03-06T12:00:00",
        "end_time": "2026-03-09T12:00:00",  # spans the US change to daylight time on 03-08
        "timezone": "America/Chicago",
        "record_types": [1, 3],
        "directions": ["outbound"],
    }
    out = tmp_path / "report.csv"
    with running_server(data, env=backends) as url:
        done = run_mdr(
            "request",
            "create",
            "--start",
            body["start_time"],
            "--end",
            body["end_time"],
            "--timezone",
            body["timezone"],
            "--record-type",
            "complete",
            "--record-type",
            "errors",
            "--direction",
            "outbound",
            "--download",
            str(out),
            "--json",
            data_dir=None,
            env={"MDR_URL": url, "MDR_API_KEY": key},
        )
        assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["status"] == 2

    rows = pq.read_table(generated).to_pylist()
    files = {}
    for row in rows:
        files.setdefault(row["created_at"].date(), [[]])[0].append(row)
    spec = parse_v1(body, datetime(2026, 11, 29, tzinfo=UTC))
    expected = reference_csv(spec, ["acct-01"], files)
    got = out.read_bytes()
    assert got.count(b"\n") == shown["record_count"] + 1 > 100
    assert got == expected
    assert shown["size_bytes"] == len(got)
