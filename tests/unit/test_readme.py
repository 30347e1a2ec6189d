"""What the README promises a new user: links that resolve inside this repository, the
port of `make run`, and the API contract shipped in docs/ (issue 7, item 5)."""

from __future__ import annotations

import re
from pathlib import Path

from mdr_reporting.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_resolves_inside_the_repository() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name} links outside the repo: {target}"
            assert path.exists(), f"{doc.name} links to a missing file: {target}"


def test_no_doc_points_at_files_a_user_does_not_have() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert "../shared" not in text and "shared/spec" not in text, doc.name


def test_the_api_contract_ships_in_docs() -> None:
    contract = (ROOT / "docs" / "api.md").read_text()
    assert "## 8. Accounts, keys, errors" in contract
    assert "(docs/api.md)" in (ROOT / "README.md").read_text()


def test_the_readme_says_how_to_choose_the_port_and_it_works() -> None:
    assert "`MDR_PORT=8001 make run`" in (ROOT / "README.md").read_text()
    assert "$(BIN)/mdr demo" in (ROOT / "Makefile").read_text()  # make run reads the setting
    settings = load_settings({}, environ={"MDR_PORT": "8001"})
    assert (settings.port, settings.public_url) == (8001, "http://127.0.0.1:8001")


def test_the_readme_says_how_to_read_a_csv_in_pandas() -> None:
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "pandas.read_csv(path, dtype=str, keep_default_na=False)" in text
    assert 'format: "parquet"' in text
