"""Demo data: an empty lake is filled with generated records once."""

from __future__ import annotations

from rich.console import Console

from mdr_reporting.catalog import Catalog
from mdr_reporting.cli.records import load_demo_records
from mdr_reporting.lake import open_lake
from mdr_reporting.settings import Settings


def test_demo_records_fill_an_empty_lake_once(settings: Settings, catalog: Catalog) -> None:
    quiet = Console(quiet=True)
    assert load_demo_records(settings, catalog, 3000, quiet) == 3000
    assert catalog.get_account("acct-20") is not None
    figures = open_lake(settings.lake_url).stats()
    assert 0 < figures.rows <= 3000 and len(figures.days) >= 29
    assert load_demo_records(settings, catalog, 3000, quiet) == 0
