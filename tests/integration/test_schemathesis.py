"""Schemathesis over every operation of /openapi.json, every phase and every check.

The app is the one ``mdr serve`` builds (SQLite catalog, Parquet lake, the DuckDB
worker), holding records and Complete reports, with a key of every scope.  The run is
seeded and derandomized, so it sends the same few thousand cases on every run; the
longer run is ``bench/schemathesis_long.py``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.contract import DOWNLOAD, V1, live_app, run_schemathesis

SEED = 20261203
MAX_EXAMPLES = 20  # per operation in the fuzzing phase; the coverage phase adds ~2,000 cases


def test_every_operation_keeps_the_published_contract(tmp_path: Path) -> None:
    with live_app(tmp_path) as live:
        with TestClient(live.app) as client:
            document = client.get("/openapi.json").json()
        summary = run_schemathesis(live, seed=SEED, max_examples=MAX_EXAMPLES)

    report = "\n\n".join(summary.errors + summary.failures)
    assert not summary.errors and not summary.failures, report
    documented = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    assert documented <= summary.operations, documented - summary.operations
    assert summary.cases >= 1500, summary.cases
    assert summary.phases.keys() >= {"examples", "coverage", "fuzzing", "stateful"}
    # The real data was reached: downloads through live links, reads and deletes of
    # existing requests, accepted creates and ingested batches.
    answered = {(label, status) for label, status in summary.statuses}
    assert {(f"GET {DOWNLOAD}", 200), (f"GET {V1}/{{request_id}}", 200)} <= answered
    assert {(f"DELETE {V1}/{{request_id}}", 200), (f"POST {V1}", 200)} <= answered
    assert ("POST /ingest/mdrs", 200) in answered
