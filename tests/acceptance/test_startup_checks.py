"""A setting that names something unusable stops `mdr serve` and `mdr worker` with one line.

Nothing starts half-configured: the checks run before the catalog is migrated (the
one start-up step with shared effects), so a bad lake or file store leaves no catalog.
The commands run in-process through click's runner (a subprocess costs seconds each
here); one case runs as a real subprocess to show nothing else reaches stderr.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mdr_reporting.cli.main import cli
from tests.acceptance.helpers import free_port, run_mdr

UNREACHABLE = f"postgresql://mdr:hunter2-password@127.0.0.1:{free_port()}/mdr"

CASES = [
    # (id, environment, data folder inside tmp_path or absolute, words the line must hold)
    ("catalog-unreachable", {"MDR_CATALOG_URL": UNREACHABLE}, "data", ["catalog", "refused"]),
    (
        "catalog-driver",
        {"MDR_CATALOG_URL": "postgresql+asyncpg://x@127.0.0.1/x"},
        "data",
        ["psycopg"],
    ),
    ("data-dir-is-a-file", {}, "a-file", ["data folder", "not a directory"]),
    (
        "lake-is-a-file",
        {"MDR_LAKE_URL": "{tmp}/a-file"},
        "data",
        ["record lake", "Not a directory"],
    ),
    ("files-not-creatable", {"MDR_FILES_URL": "{tmp}/a-file/reports"}, "data", ["report files"]),
]


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize(
    ("env", "data", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_bad_setting_stops_start_up_with_one_line(
    tmp_path: Path, command: str, env: dict[str, str], data: str, words: list[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    env = {k: v.replace("{tmp}", tmp_path.as_uri()) for k, v in env.items()}
    port = ["--port", str(free_port())] if command == "serve" else []
    args = [command, *port, "--data-dir", str(tmp_path / data)]
    done = CliRunner(env=env).invoke(cli, args, catch_exceptions=False)
    assert done.exit_code == 2, done.output
    _one_error_line(done.stderr, words)
    assert "hunter2" not in done.output  # the password never reaches a log
    assert not (tmp_path / "data" / "catalog.db").exists(), "the catalog was touched"


def test_an_unreachable_catalog_stops_the_worker_process_with_one_line(tmp_path: Path) -> None:
    done = run_mdr("worker", data_dir=tmp_path / "data", env={"MDR_CATALOG_URL": UNREACHABLE})
    assert done.returncode == 2, done.stderr
    _one_error_line(done.stderr, ["catalog", "refused"])
    assert "hunter2" not in done.stderr + done.stdout


def _one_error_line(stderr: str, words: list[str]) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]
