"""Owner-only data: folders 0700 and files 0600 under a permissive umask (022), and signing
secrets that rotate with key ids while old links stay valid until they expire."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.files import LinkSigner, LocalFileStore
from mdr_reporting.files.signing import LinkRejected
from mdr_reporting.lake.local import LocalLake
from mdr_reporting.owner_only import write_new
from mdr_reporting.settings import (
    SettingsError,
    ensure_signing_secret,
    load_settings,
    rotate_signing_secret,
)
from mdr_reporting.worker.testing import ManualClock
from tests.records import record, table

TTL = timedelta(hours=3)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_catalog_and_its_folder_are_owner_only(tmp_path: Path, umask_022: None) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'deeper' / 'catalog.db'}"
    catalog = Catalog(url)
    try:
        catalog.migrate()
        catalog.create_account("A", account_id="a")
        made = [p for p in (tmp_path / "new").rglob("*")]
        assert {p.name for p in made} >= {"deeper", "catalog.db", "catalog.db-wal"}
        for path in [tmp_path / "new", *made]:
            assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    finally:
        catalog.close()


def test_report_files_and_their_folders_are_owner_only(tmp_path: Path, umask_022: None) -> None:
    store = LocalFileStore(tmp_path / "data" / "reports")
    source = tmp_path / "built.csv"
    source.write_text("id\r\n")
    assert mode(source) == 0o644  # the builder's file, under the umask
    store.put("req-1/a.csv", source)
    assert mode(tmp_path / "data") == 0o700
    assert mode(tmp_path / "data" / "reports") == 0o700
    assert mode(tmp_path / "data" / "reports" / "req-1") == 0o700
    assert mode(store.path("req-1/a.csv")) == 0o600


def test_local_lake_files_and_folders_are_owner_only(tmp_path: Path, umask_022: None) -> None:
    lake = LocalLake(tmp_path / "data" / "lake")
    lake.append(table([record(0), record(100_000)]))  # two days
    lake.append(table([record(1)]))
    lake.compact()
    made = list((tmp_path / "data").rglob("*"))
    assert len([p for p in made if p.suffix == ".parquet"]) >= 2
    assert any(p.name == "_manifest.json" for p in made)
    for path in [tmp_path / "data", *made]:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_the_generated_secret_is_0600_from_its_first_byte(tmp_path: Path) -> None:
    old = os.umask(0)  # the widest umask: the mode given at creation is all there is
    try:
        settings = ensure_signing_secret(load_settings({"data_dir": str(tmp_path / "d")}, {}))
    finally:
        os.umask(old)
    assert len(settings.signing_secret) >= 16
    assert mode(tmp_path / "d") == 0o700
    assert mode(tmp_path / "d" / "signing.secret") == 0o600
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["signing.secret"]  # no staging left


def test_write_new_never_replaces_what_another_process_wrote(tmp_path: Path) -> None:
    assert write_new(tmp_path / "s", b"first")
    assert not write_new(tmp_path / "s", b"second")
    assert (tmp_path / "s").read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_links_of_a_rotated_secret_stay_valid_until_they_expire(tmp_path: Path) -> None:
    clock = ManualClock()
    data = tmp_path / "data"
    before = ensure_signing_secret(load_settings({"data_dir": str(data)}, {}))
    old_signer = LinkSigner(before.signing_secret, "http://x", TTL, clock)
    old_link = old_signer.sign("req-1", "req-1/a.csv")
    assert old_link.signature.startswith(old_signer.key_id + ".")

    rotate_signing_secret(data)
    after = ensure_signing_secret(load_settings({"data_dir": str(data)}, {}))
    assert after.signing_secret != before.signing_secret
    assert after.signing_old_secrets == (before.signing_secret,)
    assert mode(data / "signing.old-secrets") == 0o600
    assert mode(data / "signing.secret") == 0o600
    signer = LinkSigner(
        after.signing_secret, "http://x", TTL, clock, old_secrets=after.signing_old_secrets
    )
    assert signer.key_id != old_signer.key_id
    new_link = signer.sign("req-1", "req-1/a.csv")
    assert new_link.signature.startswith(signer.key_id + ".")
    for link in (old_link, new_link):
        signer.verify("req-1", link.file, str(link.expires), link.signature)
    # a link from before key ids (no "<kid>.") is checked against every secret
    legacy = old_link.signature.partition(".")[2]
    signer.verify("req-1", old_link.file, str(old_link.expires), legacy)
    # a server that never had the old secret refuses the old link
    stranger = LinkSigner(after.signing_secret, "http://x", TTL, clock)
    with pytest.raises(LinkRejected, match="signature"):
        stranger.verify("req-1", old_link.file, str(old_link.expires), old_link.signature)
    # a key id naming one secret with the signature of another does not verify
    forged = f"{signer.key_id}.{legacy}"
    with pytest.raises(LinkRejected, match="signature"):
        signer.verify("req-1", old_link.file, str(old_link.expires), forged)
    clock.advance(TTL + timedelta(seconds=1))
    with pytest.raises(LinkRejected, match="expired"):
        signer.verify("req-1", old_link.file, str(old_link.expires), old_link.signature)


def test_old_secrets_come_from_the_setting_too(tmp_path: Path) -> None:
    settings = load_settings(
        {"data_dir": str(tmp_path), "signing_secret": "n" * 20},
        {"MDR_SIGNING_OLD_SECRETS": "a" * 16 + ", " + "b" * 20},
    )
    assert settings.signing_old_secrets == ("a" * 16, "b" * 20)
    with pytest.raises(SettingsError, match="MDR_SIGNING_OLD_SECRETS: every secret"):
        load_settings({"data_dir": str(tmp_path)}, {"MDR_SIGNING_OLD_SECRETS": "short"})
    (tmp_path / "signing.old-secrets").write_text("# retired 2026-12-01\n" + "c" * 16 + "\n")
    assert ensure_signing_secret(settings).signing_old_secrets == ("a" * 16, "b" * 20, "c" * 16)
