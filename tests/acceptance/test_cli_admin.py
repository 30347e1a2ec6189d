"""`mdr admin ...` exactly as cli.md says, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.acceptance.helpers import MDR, run_mdr


def test_admin_commands_json(tmp_path: Path) -> None:
    made = run_mdr(
        "admin", "create-account", "Acme", "--id", "acct-01", "--json", data_dir=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout) == {"id": "acct-01", "name": "Acme", "parent_id": None}

    child = run_mdr(
        "admin", "create-account", "Acme EU", "--parent", "acct-01", "--json", data_dir=tmp_path
    )
    child_json = json.loads(child.stdout)
    assert child_json["parent_id"] == "acct-01" and child_json["id"]

    key = run_mdr(
        "admin",
        "create-key",
        "--account",
        "acct-01",
        "--scope",
        "ingest",
        "--json",
        data_dir=tmp_path,
    )
    key_json = json.loads(key.stdout)
    assert set(key_json) == {"id", "key", "account_id", "scope"}
    assert key_json["scope"] == "ingest" and key_json["key"].startswith("mdr_")
    assert key_json["key"] not in (tmp_path / "catalog.db").read_bytes().decode("latin-1")

    revoked = run_mdr("admin", "revoke-key", key_json["id"], "--json", data_dir=tmp_path)
    assert json.loads(revoked.stdout) == {"id": key_json["id"], "revoked": True}

    listed = json.loads(run_mdr("admin", "list-accounts", "--json", data_dir=tmp_path).stdout)
    assert [a["name"] for a in listed["accounts"]] == ["Acme", "Acme EU"]


def test_admin_commands_text_output(tmp_path: Path) -> None:
    run_mdr("admin", "create-account", "Acme", "--id", "acct-01", data_dir=tmp_path)
    out = run_mdr(
        "admin", "create-key", "--account", "acct-01", "--scope", "reports", data_dir=tmp_path
    )
    assert "key: mdr_" in out.stdout and "not shown again" in out.stdout
    assert "acct-01\tAcme" in run_mdr("admin", "list-accounts", data_dir=tmp_path).stdout


def test_mdr_data_dir_environment_variable(tmp_path: Path) -> None:
    env = {"MDR_DATA_DIR": str(tmp_path / "via-env")}
    done = subprocess.run(
        [*MDR, "admin", "create-account", "Env", "--json"],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "via-env" / "catalog.db").exists()


def test_user_mistakes_give_one_line_and_no_traceback(tmp_path: Path) -> None:
    cases = [
        (
            ("admin", "create-key", "--account", "nobody", "--scope", "reports"),
            "account nobody does not exist",
        ),
        (("admin", "revoke-key", "key_nope"), "key key_nope does not exist"),
        (
            ("admin", "create-account", "X", "--parent", "ghost"),
            "parent account ghost does not exist",
        ),
    ]
    for args, message in cases:
        done = run_mdr(*args, data_dir=tmp_path)
        assert done.returncode != 0
        assert done.stderr.strip() == f"error: {message}"
    run_mdr("admin", "create-account", "A", "--id", "dup", data_dir=tmp_path)
    again = run_mdr("admin", "create-account", "A", "--id", "dup", data_dir=tmp_path)
    assert again.stderr.strip() == "error: account dup already exists"
    bad_setting = run_mdr("admin", "list-accounts", data_dir=tmp_path, env={"MDR_ENGINE": "oracle"})
    assert bad_setting.returncode != 0
    assert bad_setting.stderr.strip().startswith("error: settings: MDR_ENGINE: must be one of")
    assert "Traceback" not in bad_setting.stderr
