"""`mdr worker`: a report worker (and expiry sweeper) on its own, for the scaled-out layout."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import click

from mdr_reporting.cli.admin import lake_in_catalog, open_catalog, open_files, open_record_lake
from mdr_reporting.cli.common import configure_logging, fail, load, settings_options
from mdr_reporting.worker import Background, EngineUnavailable, report_builder

__all__ = ["worker"]


@click.command()
@click.option(
    "--concurrency",
    default=None,
    type=int,
    help="Reports built at once (MDR_WORKER_CONCURRENCY; default 1).",
)
@settings_options
def worker(concurrency: int | None, **flags: Any) -> None:
    """Build reports from the catalog's queue until interrupted (SIGINT or SIGTERM)."""
    settings = load(worker_concurrency=concurrency, **flags)
    configure_logging(settings)
    files = open_files(settings)
    # The catalog last (its migration is the one step with shared effects), except
    # before a lake whose manifest lives in it.
    lake = None if lake_in_catalog(settings) else open_record_lake(settings)
    catalog = open_catalog(settings)
    try:
        builder = report_builder(settings, lake or open_record_lake(settings))
    except EngineUnavailable as exc:
        fail(str(exc))
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    click.echo(f"mdr worker building reports with {settings.worker_concurrency} slot(s)")
    try:
        with Background(settings, catalog, files, builder):
            while not stop.wait(1.0):
                pass
    finally:
        catalog.close()
    click.echo("mdr worker stopped")
