"""Rough edges a new user hit with the command line (issue 7, item 5): read-only commands
that created an empty data folder, ids cut to the terminal width, whole ids to type."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

import httpx

from tests.acceptance.helpers import MDR, reports_key, run_mdr, running_server


def _run_in(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MDR_")}
    return subprocess.run(
        [*MDR, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**full, **env},
        timeout=120,
        check=False,
    )


def test_read_only_commands_create_no_data_folder(tmp_path: Path) -> None:
    folder = (tmp_path / "mdr-data").resolve()
    for args in (("lake", "stats"), ("lake", "stats", "--json"), ("admin", "list-accounts")):
        done = _run_in(tmp_path, *args)
        assert done.returncode != 0, args
        assert done.stderr.strip() == (
            f"error: no data folder at {folder}: nothing to show "
            "(pass --data-dir DIR or set MDR_DATA_DIR)"
        ), args
        assert list(tmp_path.iterdir()) == [], args
    no_server = _run_in(
        tmp_path, "request", "list", MDR_URL="http://127.0.0.1:9", MDR_API_KEY="mdr_x"
    )
    assert no_server.returncode != 0 and "cannot reach" in no_server.stderr
    assert list(tmp_path.iterdir()) == []
    # a data folder without a lake yet: the message names what is missing, and where
    folder.mkdir()
    empty = _run_in(tmp_path, "lake", "stats")
    assert empty.stderr.strip() == (
        f"error: no lake at {folder / 'lake'}: nothing to show (data folder {folder}; "
        "pass --data-dir DIR or set MDR_DATA_DIR)"
    )
    assert list(folder.iterdir()) == []


def test_ids_whole_in_list_and_prefixes_everywhere(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_mdr("admin", "create-account", "Acme", "--id", "acct-01", data_dir=data)
    key = reports_key(data, "acct-01")
    with running_server(data) as url:
        env = {"MDR_URL": url, "MDR_API_KEY": key, "COLUMNS": "40"}
        body = {"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-02T00:00:00Z"}
        ids = [
            httpx.post(
                f"{url}/reporting/mdr_requests",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            ).json()["id"]
            for _ in range(18)  # beside the first, 17 ids on 16 hex digits: two share one
        ]
        listed = run_mdr("request", "list", data_dir=None, env=env)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split() == ["id", "status", "created_at", "records", "report_name"]
        assert sorted(line.split()[0] for line in lines[1:]) == sorted(ids)

        target = ids[0]
        prefix = next(
            target[:n] for n in range(4, 36) if sum(i.startswith(target[:n]) for i in ids) == 1
        )
        waited = run_mdr("request", "wait", prefix, data_dir=None, env=env)
        assert waited.returncode == 0, waited.stderr
        assert f"id            {target}" in waited.stdout
        shown = run_mdr("request", "get", prefix, data_dir=None, env=env)
        assert f"id            {target}" in shown.stdout
        # words for people: no Python list syntax, progress in percent
        assert "directions    inbound, outbound" in shown.stdout
        assert "progress      100%" in shown.stdout
        assert "[" not in shown.stdout and "'" not in shown.stdout
        saved = tmp_path / "report.csv"
        fetched = run_mdr("request", "download", prefix, str(saved), data_dir=None, env=env)
        assert fetched.returncode == 0, fetched.stderr
        assert saved.read_bytes().startswith(b"id,")
        gone = run_mdr("request", "delete", prefix, data_dir=None, env=env)
        assert gone.stdout.strip() == f"deleted {target}"

        shared, _ = Counter(i[0] for i in ids[1:]).most_common(1)[0]
        many = run_mdr("request", "get", shared, data_dir=None, env=env)
        assert many.returncode != 0
        assert f"{shared!r} is the start of more than one request id" in many.stderr
        none = run_mdr("request", "get", "zzzz", data_dir=None, env=env)
        assert "no request id starts with 'zzzz'" in none.stderr
