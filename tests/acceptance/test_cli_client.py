"""`mdr request ...` against a real `mdr serve` subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.helpers import reports_key, run_mdr, running_server


def test_request_create_get_list_delete(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_mdr("admin", "create-account", "Acme", "--id", "acct-01", data_dir=data)
    key = reports_key(data, "acct-01")
    with running_server(data) as url:
        env = {"MDR_URL": url, "MDR_API_KEY": key}
        made = run_mdr(
            "request",
            "create",
            "--start",
            "2026-01-01T00:00:00",
            "--end",
            "2026-01-08T00:00:00",
            "--timezone",
            "America/Chicago",
            "--direction",
            "outbound",
            "--record-type",
            "errors",
            "--cli",
            "starts_with:+1312",
            "--tag",
            "campaign-7",
            "--json",
            data_dir=None,
            env=env,
        )
        assert made.returncode == 0, made.stderr
        created = json.loads(made.stdout)
        assert created["directions"] == ["outbound"] and created["record_types"] == [3]
        assert created["start_time"] == "2026-01-01T00:00:00-06:00"
        assert json.loads(created["filters"]) == [
            {"filter_type": "and", "cli": "+1312", "cli_filter": "starts_with"},
            {"filter_type": "and", "tags_list": ["campaign-7"]},
        ]
        shown = run_mdr("request", "get", created["id"], data_dir=None, env=env)
        assert f"id            {created['id']}" in shown.stdout
        assert any(f"status        {s}" in shown.stdout for s in ("pending", "complete"))
        listed = run_mdr("request", "list", "--json", data_dir=None, env=env)
        assert [r["id"] for r in json.loads(listed.stdout)] == [created["id"]]
        gone = run_mdr("request", "delete", created["id"], data_dir=None, env=env)
        assert gone.stdout.strip() == f"deleted {created['id']}"

        bad = run_mdr("request", "create", "--start", "nope", data_dir=None, env=env)
        assert bad.returncode != 0
        assert bad.stderr.strip().startswith("error: 400: /start_time:")
        wrong_key = run_mdr(
            "request", "list", data_dir=None, env={"MDR_URL": url, "MDR_API_KEY": "mdr_wrong"}
        )
        assert wrong_key.stderr.strip() == "error: 401: unknown or revoked API key"
    no_server = run_mdr("request", "list", data_dir=None, env=env)
    assert no_server.returncode != 0 and "cannot reach" in no_server.stderr
