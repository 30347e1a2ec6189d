"""The whole path as a user runs it: generate, ingest, serve, request, wait, download, compare.

The expected file comes from the independent reference implementation of api.md
sections 4-7 (tests/unit/reference_report.py) over the generated records.

It runs once per deployment in :data:`DEPLOYMENTS`. Each is a dict: ``catalog``
(``sqlite`` or ``postgresql``), ``workers`` (0: `mdr serve` builds reports itself;
N: `mdr serve --without-worker` and N `mdr worker` processes), ``env`` (more
``MDR_*`` settings; ``{tmp}`` is the test's folder as a ``file://`` URL) and
``env_fixture`` (the name of a fixture returning more settings, for a backend that
needs a service: an S3 bucket on moto, a Spark cluster). A new backend is one more dict.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from mdr_reporting.domain.requests import parse_v1
from tests.acceptance.helpers import reports_key, run_mdr, running_server, running_worker
from tests.conftest import POSTGRES_URL, postgres_schema_url
from tests.unit.reference_report import reference_csv

DEPLOYMENTS: list[dict[str, Any]] = [
    {"id": "sqlite", "catalog": "sqlite", "workers": 0},
    {"id": "postgresql", "catalog": "postgresql", "workers": 0},
    {"id": "postgresql-split", "catalog": "postgresql", "workers": 1},
    {"id": "s3-sqlite", "catalog": "sqlite", "workers": 0, "env_fixture": "s3_env"},
    {"id": "s3-postgresql", "catalog": "postgresql", "workers": 0, "env_fixture": "s3_env"},
    # Spark reads the lake from a folder its executors share (this machine's disk); a real
    # cluster reads s3a:// with the hadoop-aws jars, which cannot be installed here.
    {"id": "spark-sqlite", "catalog": "sqlite", "workers": 0, "env_fixture": "spark_env"},
    {"id": "spark-postgresql", "catalog": "postgresql", "workers": 0, "env_fixture": "spark_env"},
]


@pytest.fixture
def spark_env(spark_cluster: Any, s3_env: dict[str, str]) -> dict[str, str]:
    """The Spark engine on the test session's standalone cluster, report files on S3."""
    conf = ";".join(f"{k}={v}" for k, v in spark_cluster.client_conf().items())
    return {
        "MDR_ENGINE": "spark",
        "MDR_SPARK_MASTER": spark_cluster.master_url,
        "MDR_SPARK_CONF": conf,
        "MDR_FILES_URL": s3_env["MDR_FILES_URL"],
        "MDR_S3_ENDPOINT_URL": s3_env["MDR_S3_ENDPOINT_URL"],
    }


@pytest.fixture
def s3_env(s3_endpoint: str, s3_bucket: str) -> dict[str, str]:
    """Lake and report files on S3 (moto)."""
    return {
        "MDR_LAKE_URL": f"s3://{s3_bucket}/lake",
        "MDR_FILES_URL": f"s3://{s3_bucket}/reports",
        "MDR_S3_ENDPOINT_URL": s3_endpoint,
    }


@pytest.fixture(params=DEPLOYMENTS, ids=[d["id"] for d in DEPLOYMENTS])
def deployment(request: pytest.FixtureRequest) -> dict[str, Any]:
    """One deployment, its ``env_fixture``'s settings merged into ``env``."""
    chosen = dict(request.param)
    if "env_fixture" in chosen:
        chosen["env"] = {**chosen.get("env", {}), **request.getfixturevalue(chosen["env_fixture"])}
    return chosen


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated records, made once for every deployment."""
    path = tmp_path_factory.mktemp("records") / "traffic.parquet"
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
        str(path),
        data_dir=None,
    )
    assert made.returncode == 0, made.stderr
    return path


@contextlib.contextmanager
def deployment_env(deployment: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, str]]:
    """The ``MDR_*`` settings of a deployment, with its services set up and torn down."""
    env = {k: v.replace("{tmp}", tmp_path.as_uri()) for k, v in deployment.get("env", {}).items()}
    if deployment["catalog"] == "postgresql":
        if POSTGRES_URL is None:
            pytest.skip("MDR_TEST_POSTGRES_URL not set")
        schema = postgres_schema_url()
        env["MDR_CATALOG_URL"] = next(schema)
        try:
            yield env
        finally:
            next(schema, None)  # drops the schema
    else:
        yield env


@contextlib.contextmanager
def serving(data: Path, deployment: dict[str, Any], env: dict[str, str]) -> Iterator[str]:
    """The deployment's processes; yields the API's base URL."""
    workers = int(deployment["workers"])
    with contextlib.ExitStack() as stack:
        for _ in range(workers):
            stack.enter_context(running_worker(data, env))
        mode = "--without-worker" if workers else "--with-worker"
        yield stack.enter_context(running_server(data, mode, env=env))


def test_generate_ingest_request_download_matches_the_reference(
    tmp_path: Path, generated: Path, deployment: dict[str, Any]
) -> None:
    with deployment_env(deployment, tmp_path) as env:
        _ingest_request_download(tmp_path, generated, deployment, env)


def _ingest_request_download(
    tmp_path: Path, generated: Path, deployment: dict[str, Any], env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    loaded = run_mdr("ingest", str(generated), "--create-accounts", data_dir=data, env=env)
    assert loaded.returncode == 0, loaded.stderr
    key = reports_key(data, "acct-01", env)

    body = {
        "start_time": "2026-03-06T12:00:00",
        "end_time": "2026-03-09T12:00:00",  # spans the US change to daylight time on 03-08
        "timezone": "America/Chicago",
        "record_types": [1, 3],
        "directions": ["outbound"],
    }
    out = tmp_path / "report.csv"
    with serving(data, deployment, env) as url:
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
