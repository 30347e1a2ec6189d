"""An S3 bucket that does not answer stops `mdr serve` and `mdr ingest` with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.helpers import run_mdr


@pytest.mark.parametrize("setting", ["MDR_LAKE_URL", "MDR_FILES_URL"])
def test_an_unreachable_bucket_stops_start_up_with_one_line(
    tmp_path: Path, s3_endpoint: str, setting: str
) -> None:
    env = {setting: "s3://no-such-bucket/x", "MDR_S3_ENDPOINT_URL": s3_endpoint}
    served = run_mdr("serve", "--port", "0", data_dir=tmp_path, env=env)
    assert served.returncode != 0
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1, served.stderr
    assert "'no-such-bucket'" in lines[0] and "NoSuchBucket" in lines[0]
    purpose = "record lake" if setting == "MDR_LAKE_URL" else "report files"
    assert lines[0].startswith(f"error: {purpose} at s3://no-such-bucket/x: S3 bucket")
    assert "Traceback" not in served.stderr


def test_mdr_ingest_names_the_lake_bucket_that_does_not_answer(tmp_path: Path) -> None:
    records = tmp_path / "r.ndjson"
    records.write_text("")
    env = {"MDR_LAKE_URL": "s3://bucket/lake", "MDR_S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    loaded = run_mdr("ingest", str(records), data_dir=tmp_path, env=env)
    assert loaded.returncode != 0
    assert len(loaded.stderr.strip().splitlines()) == 1, loaded.stderr
    assert "s3://bucket/lake: S3 bucket 'bucket' at http://127.0.0.1:9 is not reachable" in (
        loaded.stderr
    )
