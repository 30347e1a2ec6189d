"""`mdr ingest` of a file that once killed the process (Arrow's reader, SIGSEGV, exit 139)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.helpers import run_mdr


def test_a_null_line_is_a_clear_message_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "null.ndjson"
    path.write_bytes(b"null\n")
    done = run_mdr("ingest", str(path), "--create-accounts", data_dir=tmp_path / "data")
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "line 1: record: expected a JSON object, got null" in done.stderr
    assert "nothing from this file was stored" in done.stderr
    assert "Traceback" not in done.stderr
    stats = run_mdr("lake", "stats", "--json", data_dir=tmp_path / "data")
    assert json.loads(stats.stdout)["rows"] == 0
