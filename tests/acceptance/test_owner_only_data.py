"""The `mdr` command under a permissive umask (022) still keeps its data owner-only:
the data folder, catalog, lake, secrets and build folders are 0700 / 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.acceptance.helpers import run_mdr


def test_ingest_under_umask_022_leaves_only_owner_only_paths(tmp_path: Path) -> None:
    data = tmp_path / "data"
    source = tmp_path / "in.ndjson"
    old = os.umask(0o022)  # inherited by the subprocesses
    try:
        made = run_mdr(
            "generate", "--records", "300", "--days", "2", "--out", str(source), data_dir=data
        )
        assert made.returncode == 0, made.stderr
        done = run_mdr("ingest", str(source), "--create-accounts", data_dir=data)
        assert done.returncode == 0, done.stderr
        secret = (data / "signing.secret").read_text()
        rotated = run_mdr("admin", "rotate-signing-secret", data_dir=data)
        assert rotated.returncode == 0, rotated.stderr
    finally:
        os.umask(old)
    paths = [data, *data.rglob("*")]
    names = {p.name for p in paths}
    assert {"catalog.db", "signing.secret", "signing.old-secrets", "lake"} <= names
    assert (data / "signing.old-secrets").read_text() == secret + "\n"
    assert (data / "signing.secret").read_text() != secret
    assert any(p.suffix == ".parquet" for p in paths)
    wide = {
        str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in paths
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert wide == {}
