"""Demo data: an empty lake is filled with generated records once."""

from __future__ import annotations

import re

import pytest
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


def test_the_demo_says_what_it_generated_and_what_the_lake_stored(
    settings: Settings, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    load_demo_records(settings, catalog, 3000, Console(quiet=True))
    said = capsys.readouterr().out
    found = re.search(
        r"generated ([\d,]+) demo records: ([\d,]+) messages, ([\d,]+) of them twice .*"
        r"the lake stored ([\d,]+) versions",
        said,
    )
    assert found, said
    generated, messages, twice, stored = (int(g.replace(",", "")) for g in found.groups())
    assert generated == 3000 and messages + twice == generated and twice > 0
    assert stored == open_lake(settings.lake_url).stats().rows
