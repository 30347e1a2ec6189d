"""Reports built by the Spark engine (a real standalone cluster) through the API and the
worker, with ``engine = auto`` choosing per request; and start-up with a Spark engine
that cannot run stops with one line."""

from __future__ import annotations

import csv
import dataclasses
import io
import socket
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mdr_reporting.api import create_app
from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.cli.main import cli
from mdr_reporting.cli.serve import build_services
from mdr_reporting.domain.query import compile_query
from mdr_reporting.engines.duckdb import DuckDBEngine
from mdr_reporting.engines.spark import SparkEngine
from mdr_reporting.settings import SettingsError, load_settings
from mdr_reporting.worker import Worker, job_queue
from mdr_reporting.worker.lake_builder import LakeReportBuilder
from tests.records import BASE, ndjson, record

V2 = "/v2/legacy/reporting/batch_detail_records/messaging"


@pytest.mark.timeout(900)  # a Spark job on a busy 2-core machine can take minutes
def test_auto_sends_the_large_report_to_spark_and_shows_the_engine(
    spark_engine: SparkEngine, tmp_path: Path
) -> None:
    settings = load_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "signing_secret": "test-secret-0123456789",
            "engine": "auto",
            "auto_spark_rows": 150,
        },
        environ={},
    )
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    services = build_services(settings, catalog)
    catalog.create_account("A", account_id="acct-a")
    ingest = catalog.create_key("acct-a", KeyScope("ingest")).secret
    key = catalog.create_key("acct-a", KeyScope("reports")).secret
    reports = {"Authorization": f"Bearer {key}"}
    rows = [
        record(
            i,
            created_at=(BASE + timedelta(minutes=15 * i)).isoformat(),
            sent_at=None,
            cli="+ΟΔΟΣ" if i % 3 else "İSTANBUL",
            message_body='say "hi",\r\nthen go' if i % 7 == 0 else None,
            status="delivered" if i % 2 else "sent",
        )
        for i in range(300)
    ]
    assert services.lake is not None and services.files is not None
    builder = LakeReportBuilder(
        services.lake, DuckDBEngine(), large=("spark", spark_engine), large_rows=150
    )
    worker = Worker(job_queue(settings, catalog), services.files, builder, work_dir=tmp_path)
    with TestClient(create_app(services)) as client:
        answer = client.post(
            "/ingest/mdrs",
            content=ndjson(rows),
            headers={"Authorization": f"Bearer {ingest}", "Content-Type": "application/x-ndjson"},
        )
        assert answer.status_code == 200, answer.text
        common = {
            "timezone": "America/Chicago",
            "record_types": [1, 2],
            "include_message_body": True,
            "filters": [{"filter_type": "and", "cli": "οδος", "cli_filter": "contains"}],
        }
        small = {
            **common,
            "start_time": "2026-03-01T00:00:00",
            "end_time": "2026-03-01T12:00:00",
        }
        large = {**common, "start_time": "2026-02-28T00:00:00", "end_time": "2026-03-05T00:00:00"}
        ids = []
        for body in (small, large):
            created = client.post("/reporting/mdr_requests", json=body, headers=reports)
            assert created.status_code == 200, created.text
            ids.append(created.json()["id"])
        assert worker.run_once() and worker.run_once()
        done = [client.get(f"/reporting/mdr_requests/{i}", headers=reports).json() for i in ids]
        assert [d["status"] for d in done] == [2, 2], done
        assert [d["engine"] for d in done] == ["duckdb", "spark"]
        v2 = client.get(f"{V2}/{ids[1]}", headers=reports)
        assert v2.json()["data"]["engine"] == "spark"
        link = urlsplit(done[1]["report_url"])
        body = client.get(f"{link.path}?{link.query}").content
    state = catalog.get_request(ids[1])
    assert state is not None
    query = compile_query(state.spec, state.accounts)
    DuckDBEngine().build(query, services.lake.snapshot(), tmp_path / "duck.csv")
    assert body == (tmp_path / "duck.csv").read_bytes()
    lines = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert done[1]["record_count"] == len(lines) - 1 == 200
    catalog.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unreachable_spark_master_stops_start_up_with_one_line(
    tmp_path: Path, command: str
) -> None:
    master = f"spark://127.0.0.1:{_closed_port()}"
    env = {"MDR_ENGINE": "spark", "MDR_SPARK_MASTER": master, "MDR_PORT": "0"}
    result = CliRunner().invoke(cli, [command, "--data-dir", str(tmp_path)], env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: engine spark: master {master} is not reachable (Connection refused)"]


def test_spark_conf_setting_takes_key_value_pairs() -> None:
    settings = load_settings(
        {"spark_conf": "spark.executor.memory=2g; spark.executor.extraJavaOptions=-Da=1 -Db=2"},
        environ={},
    )
    assert settings.spark_conf == (
        ("spark.executor.memory", "2g"),
        ("spark.executor.extraJavaOptions", "-Da=1 -Db=2"),
    )
    with pytest.raises(SettingsError, match=r"--spark-conf: keys must start with 'spark\.'"):
        load_settings({"spark_conf": "executor.memory=2g"}, environ={})
    assert dataclasses.replace(settings, engine="auto").auto_spark_rows == 20_000_000


def test_spark_without_pyspark_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if it were not installed
    result = CliRunner().invoke(
        cli, ["worker", "--data-dir", str(tmp_path)], env={"MDR_ENGINE": "auto"}
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: engine spark: pyspark is not installed (pip install 'mdr-reporting[spark]')"
    ]
