"""The status reader inside `mdr demo`'s download line: wait, print the link, or explain."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mdr_reporting.cli.serve import _NEWEST_REPORT, download_line


@pytest.mark.parametrize(
    ("view", "code", "stdout", "stderr"),
    [
        ({"status": 1, "report_url": None, "error": None}, 1, "", ""),
        ({"status": 2, "report_url": "http://x/r", "error": None}, 0, "http://x/r\n", ""),
        ({"status": 3, "report_url": None, "error": "boom"}, 0, "", "boom"),
        ({"status": 4, "report_url": None, "error": None}, 0, "", "4"),
    ],
)
def test_the_status_reader(view: dict[str, object], code: int, stdout: str, stderr: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NEWEST_REPORT],
        input=json.dumps([view]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (code, stdout)
    assert stderr in done.stderr


def test_the_line_is_valid_shell() -> None:
    line = download_line("http://127.0.0.1:8000", "mdr_key'with\"quotes")
    assert subprocess.run(["bash", "-n", "-c", line], check=False).returncode == 0
