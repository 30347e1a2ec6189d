"""`mdr worker`: a report worker (and expiry sweeper) on its own, for the scaled-out layout."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import click

from mdr_reporting.cli.admin import open_catalog
from mdr_reporting.cli.common import fail, load, settings_options
from mdr_reporting.files import open_file_store
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
    try:
        builder = report_builder(settings)
    except EngineUnavailable as exc:
        fail(str(exc))
    catalog = open_catalog(settings)
    try:
        files = open_file_store(settings.files_url)
    except (ValueError, OSError) as exc:
        fail(f"report files: {exc}")
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
