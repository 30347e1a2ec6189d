"""`mdr admin ...` and `mdr migrate`: local administration against the catalog (cli.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.cli.common import (
    emit,
    fail,
    load,
    load_existing,
    one_line,
    redact,
    settings_options,
)
from mdr_reporting.domain.errors import MdrError
from mdr_reporting.settings import Settings, SettingsError, rotate_signing_secret

if TYPE_CHECKING:
    from mdr_reporting.files import FileStore
    from mdr_reporting.lake import Lake

__all__ = ["admin", "migrate", "open_catalog", "open_files", "open_record_lake"]


def open_catalog(settings: Settings) -> Catalog:
    """The catalog of the settings, migrated; a one-line exit if it cannot be opened."""
    url = settings.catalog_url
    scheme = url.split("://", 1)[0]
    if scheme not in {"sqlite", "postgresql", "postgresql+psycopg"}:
        fail(f"catalog_url: PostgreSQL is reached with psycopg: use postgresql://, not {scheme}://")
    try:
        catalog = Catalog(url)
        catalog.migrate()
    except MdrError as exc:
        fail(exc.detail)
    except Exception as exc:
        fail(f"cannot open the catalog at {redact(url)}: {one_line(exc)}")
    return catalog


def open_files(settings: Settings) -> FileStore:
    """The report file store of the settings; a one-line exit if it cannot be used."""
    from mdr_reporting.files import open_file_store

    try:
        return open_file_store(settings.files_url, settings)
    except (ValueError, OSError) as exc:
        fail(f"report files at {settings.files_url}: {one_line(exc)}")


def open_record_lake(settings: Settings) -> Lake:
    """The record lake of the settings; a one-line exit if it cannot be used."""
    from mdr_reporting.lake import open_lake

    try:
        return open_lake(settings.lake_url, settings)
    except (ValueError, OSError) as exc:
        fail(f"record lake at {settings.lake_url}: {one_line(exc)}")


def lake_in_catalog(settings: Settings) -> bool:
    """Whether the lake's manifest lives in the catalog (an S3 lake), which must then be
    migrated before the lake is opened."""
    return settings.lake_url.startswith("s3://")


def _run(settings_flags: dict[str, Any], action: Any, *, read_only: bool = False) -> Any:
    settings = (
        load_existing(catalog=True, **settings_flags) if read_only else load(**settings_flags)
    )
    catalog = open_catalog(settings)
    try:
        return action(catalog)
    except MdrError as exc:
        fail(exc.detail)
    finally:
        catalog.close()


@click.command()
@settings_options
def migrate(**flags: Any) -> None:
    """Apply catalog migrations (also done at start-up)."""
    settings = load(**flags)
    open_catalog(settings).close()
    click.echo(f"catalog is up to date: {settings.catalog_url}")


@click.group()
def admin() -> None:
    """Accounts and API keys."""


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@admin.command("create-account")
@click.argument("name")
@click.option("--id", "account_id", default=None, help="Account id (default: a new UUID).")
@click.option("--parent", "parent_id", default=None, help="Parent account id.")
@json_option
@settings_options
def create_account(
    name: str, account_id: str | None, parent_id: str | None, as_json: bool, **flags: Any
) -> None:
    """Create an account."""
    account = _run(
        flags, lambda c: c.create_account(name, account_id=account_id, parent_id=parent_id)
    )
    parent = f" (parent {account.parent_id})" if account.parent_id else ""
    emit(account.to_json(), as_json, f"created account {account.id} {account.name!r}{parent}")


@admin.command("create-key")
@click.option("--account", "account_id", required=True, help="Account the key acts for.")
@click.option(
    "--scope", required=True, type=click.Choice([s.value for s in KeyScope]), help="Key scope."
)
@json_option
@settings_options
def create_key(account_id: str, scope: str, as_json: bool, **flags: Any) -> None:
    """Create an API key; its secret is shown only here."""
    new = _run(flags, lambda c: c.create_key(account_id, scope))
    data = {"id": new.key.id, "key": new.secret, "account_id": account_id, "scope": scope}
    emit(
        data,
        as_json,
        f"created {scope} key {new.key.id} for account {account_id}\n"
        f"key: {new.secret}\n(store it now: it is not shown again)",
    )


@admin.command("revoke-key")
@click.argument("key_id")
@json_option
@settings_options
def revoke_key(key_id: str, as_json: bool, **flags: Any) -> None:
    """Revoke an API key."""
    key = _run(flags, lambda c: c.revoke_key(key_id))
    emit({"id": key.id, "revoked": True}, as_json, f"revoked key {key.id}")


@admin.command("rotate-signing-secret")
@json_option
@settings_options
def rotate_signing_secret_command(as_json: bool, **flags: Any) -> None:
    """Replace the data folder's signing secret; links signed with the old one stay valid
    until they expire (it moves to signing.old-secrets). Restart the server to use it."""
    settings = load(**flags)
    if settings.sources.get("signing_secret"):
        fail("signing_secret is set explicitly: rotate it where it is set (see the README)")
    try:
        rotate_signing_secret(settings.data_dir)
    except SettingsError as exc:
        fail(str(exc))
    emit({"rotated": True}, as_json, "signing secret rotated: restart the server to use it")


@admin.command("list-accounts")
@json_option
@settings_options
def list_accounts(as_json: bool, **flags: Any) -> None:
    """List accounts."""
    found = _run(flags, lambda c: c.list_accounts(), read_only=True)
    lines = [f"{a.id}\t{a.name}\t{a.parent_id or '-'}" for a in found]
    emit(
        {"accounts": [a.to_json() for a in found]},
        as_json,
        "\n".join(["id\tname\tparent_id", *lines]),
    )
