"""`mdr generate`, `mdr ingest` and `mdr lake ...` as cli.md says, run as subprocesses."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.acceptance.helpers import MDR, run_mdr

GENERATE = ["generate", "--records", "3000", "--days", "2", "--start", "2026-03-01"]


def generate(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    done = run_mdr(*GENERATE, *extra, "--out", str(out), data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    return out


def stats(tmp_path: Path) -> dict[str, object]:
    done = run_mdr("lake", "stats", "--json", data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    figures: dict[str, object] = json.loads(done.stdout)
    return figures


def test_generate_is_deterministic_to_the_byte(tmp_path: Path) -> None:
    for name in ("a.ndjson.gz", "b.ndjson.gz", "a.csv", "b.csv", "a.parquet", "b.parquet"):
        generate(tmp_path, name)
    for suffix in (".ndjson.gz", ".csv", ".parquet"):
        assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()
    other = generate(tmp_path, "c.ndjson.gz", "--seed", "2")
    assert other.read_bytes() != (tmp_path / "a.ndjson.gz").read_bytes()
    first = json.loads(gzip.decompress((tmp_path / "a.ndjson.gz").read_bytes()).splitlines()[0])
    assert first["account_id"].startswith("acct-") and first["created_at"].endswith("+00:00")


def test_ingest_every_format_with_accounts_created(tmp_path: Path) -> None:
    files = [generate(tmp_path, n) for n in ("r.ndjson", "r.csv.gz", "r.parquet")]
    refused = run_mdr("ingest", str(files[0]), data_dir=tmp_path / "data")
    assert refused.returncode != 0
    assert "account_id: account acct-" in refused.stderr and "does not exist" in refused.stderr
    assert "--create-accounts" in refused.stderr and "Traceback" not in refused.stderr
    assert stats(tmp_path)["rows"] == 0

    done = run_mdr("ingest", *map(str, files), "--create-accounts", data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert "rows/s" in done.stderr  # the progress bar
    figures = stats(tmp_path)
    # The same records three times: the second and third file change nothing.
    assert figures["days"] == 2 and 0 < int(str(figures["rows"])) <= 3000

    accounts = run_mdr("admin", "list-accounts", "--json", data_dir=tmp_path / "data")
    assert len(json.loads(accounts.stdout)["accounts"]) == 20


def test_a_bad_file_is_reported_and_stores_nothing(tmp_path: Path) -> None:
    good = generate(tmp_path, "good.ndjson")
    lines = good.read_text().splitlines()
    lines[4] = (
        lines[4]
        .replace('"direction":"outbound"', '"direction":"sideways"')
        .replace('"direction":"inbound"', '"direction":"sideways"')
    )
    bad = tmp_path / "bad.ndjson"
    bad.write_text("\n".join(lines) + "\n")
    done = run_mdr("ingest", str(bad), "--create-accounts", data_dir=tmp_path / "data")
    assert done.returncode != 0
    assert "line 5: direction: must be one of inbound, outbound" in done.stderr
    assert "nothing from this file was stored" in done.stderr
    assert stats(tmp_path)["rows"] == 0


def test_compact_and_stats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = generate(tmp_path, "one.parquet")
    second = generate(tmp_path, "two.parquet", "--seed", "9")
    for path in (first, second):
        assert run_mdr("ingest", str(path), "--create-accounts", data_dir=data).returncode == 0
    before = stats(tmp_path)
    assert before["files"] == 4
    done = run_mdr("lake", "compact", data_dir=data)
    assert done.returncode == 0 and "4 files -> 2" in done.stdout
    after = stats(tmp_path)
    assert after["files"] == 2 and after["rows"] == before["rows"]
    text = run_mdr("lake", "stats", data_dir=data)
    assert "total: 2 days, 2 files" in text.stdout


def test_user_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    for args in (
        ["ingest", str(tmp_path / "missing.ndjson")],
        ["ingest", str(tmp_path / "records.txt")],
        ["generate", "--records", "10", "--out", str(tmp_path / "x.xlsx")],
        ["generate", "--records", "10", "--start", "yesterday", "--out", str(tmp_path / "x.csv")],
    ):
        done = run_mdr(*args, data_dir=tmp_path / "data")
        assert done.returncode != 0
        assert done.stderr.startswith("error:") or "Error:" in done.stderr
        assert "Traceback" not in done.stderr
    assert MDR
