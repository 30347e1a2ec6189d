"""Three `mdr serve` processes ingest into one S3 lake at once (PostgreSQL catalog, moto).

Every acknowledged batch must be in the lake exactly once: no append lost when two
commit at the same moment, and a batch sent to two processes at once stored once.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.lake.s3 import S3Lake
from mdr_reporting.objectstore import S3Location
from tests.acceptance.helpers import running_server
from tests.conftest import POSTGRES_URL, postgres_schema_url
from tests.records import ndjson, record

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs MDR_TEST_POSTGRES_URL")

PROCESSES = 3
BATCHES = 8  # per process
ROWS = 100


def test_three_api_processes_ingest_into_one_s3_lake_exactly_once(
    tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    schemas = postgres_schema_url()
    catalog_url = next(schemas)
    catalog = Catalog(catalog_url)
    catalog.migrate()
    catalog.create_account("A", account_id="acct-a")
    key = catalog.create_key("acct-a", KeyScope.INGEST).secret
    catalog.close()
    env = {
        "MDR_CATALOG_URL": catalog_url,
        "MDR_LAKE_URL": f"s3://{s3_bucket}/lake",
        "MDR_FILES_URL": f"s3://{s3_bucket}/reports",
        "MDR_S3_ENDPOINT_URL": s3_endpoint,
        "MDR_SIGNING_SECRET": "a-secret-shared-by-every-process",
    }
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    # Batches of new ids, and one batch that every process receives at the same time.
    batches = {
        f"p{p}-b{b}": [record((p * BATCHES + b) * ROWS + i) for i in range(ROWS)]
        for p in range(PROCESSES)
        for b in range(BATCHES)
    }
    shared = [record(10**6 + i, status="delivered") for i in range(ROWS)]
    acknowledged: list[str] = []
    try:
        with contextlib.ExitStack() as stack:
            urls = [
                stack.enter_context(running_server(tmp_path / f"data-{n}", env=env))
                for n in range(PROCESSES)
            ]

            def send(process: int) -> list[str]:
                done = []
                with httpx.Client(base_url=urls[process], headers=headers, timeout=60) as http:
                    for name in [n for n in batches if n.startswith(f"p{process}-")]:
                        if name.endswith(f"-b{BATCHES // 2}"):
                            answer = http.post("/ingest/mdrs", content=ndjson(shared))
                            assert answer.status_code == 200, answer.text
                            done.append("shared")
                        answer = http.post("/ingest/mdrs", content=ndjson(batches[name]))
                        assert answer.status_code == 200, answer.text
                        assert answer.json() == {"accepted": ROWS}
                        done.append(name)
                return done

            with ThreadPoolExecutor(PROCESSES) as pool:
                for done in pool.map(send, range(PROCESSES)):
                    acknowledged += done
        assert len(acknowledged) == PROCESSES * (BATCHES + 1)

        lake = S3Lake(S3Location(s3_bucket, "lake", s3_endpoint), catalog_url)
        snapshot = lake.snapshot()
        try:
            tables = []
            for day in snapshot.files:
                with snapshot.local_day(day, tmp_path / "copy") as files:
                    tables += [pq.read_table(f, columns=["id"]) for f in files]
        finally:
            lake.release(snapshot)
            lake.close()
        ids = pa.concat_tables(tables).column("id")
        expected = {r["id"] for name in batches for r in batches[name]} | {r["id"] for r in shared}
        counts = pc.value_counts(ids).to_pylist()
        assert {c["values"] for c in counts} == expected  # every acknowledged row is there
        assert max(c["counts"] for c in counts) == 1  # once: the shared batch too
    finally:
        next(schemas, None)
