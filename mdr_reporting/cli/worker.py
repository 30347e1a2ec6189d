"""`mdr worker`: a report worker (and expiry sweeper) on its own, for the scaled-out layout."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.cli.admin import lake_in_catalog, open_catalog, open_files, open_record_lake
from mdr_reporting.cli.common import configure_logging, fail, load, settings_options
from mdr_reporting.observability import Observability, OpsServer
from mdr_reporting.settings import Settings
from mdr_reporting.worker import Background, EngineUnavailable, report_builder

if TYPE_CHECKING:
    from mdr_reporting.lake import Lake

__all__ = ["worker"]


@click.command()
@click.option(
    "--concurrency",
    default=None,
    type=int,
    help="Reports built at once (MDR_WORKER_CONCURRENCY; default 1).",
)
@click.option(
    "--metrics-port",
    default=None,
    type=int,
    help="Serve /metrics, /healthz and /readyz on this port (MDR_METRICS_PORT; default: none).",
)
@settings_options
def worker(concurrency: int | None, metrics_port: int | None, **flags: Any) -> None:
    """Build reports from the catalog's queue until interrupted (SIGINT or SIGTERM)."""
    settings = load(worker_concurrency=concurrency, metrics_port=metrics_port, **flags)
    configure_logging(settings)
    files = open_files(settings)
    # The catalog last (its migration is the one step with shared effects), except
    # before a lake whose manifest lives in it.
    lake = None if lake_in_catalog(settings) else open_record_lake(settings)
    catalog = open_catalog(settings)
    lake = lake or open_record_lake(settings)
    try:
        builder = report_builder(settings, lake)
    except EngineUnavailable as exc:
        fail(str(exc))
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    background = Background(settings, catalog, files, builder)
    ops = _ops_server(settings, catalog, lake, background)
    click.echo(f"mdr worker building reports with {settings.worker_concurrency} slot(s)")
    if ops is not None:
        click.echo(f"metrics, health and readiness on http://{settings.host}:{ops.port}")
    try:
        with background:
            while not stop.wait(1.0):
                pass
    finally:
        if ops is not None:
            ops.stop()
        catalog.close()
    handed = background.worker.handed_back if background.worker is not None else 0
    click.echo(f"mdr worker stopped: {handed} build(s) handed back to the queue")


def _ops_server(
    settings: Settings,
    catalog: Catalog,
    lake: Lake,
    background: Background,
) -> OpsServer | None:
    """The /metrics, /healthz and /readyz server of ``metrics_port``, started (or None)."""
    if settings.metrics_port is None:
        return None
    worker = background.worker
    observability = Observability(
        catalog,
        lake,
        worker_alive=(lambda: worker.alive_at) if worker is not None else None,
        max_age=max(settings.lease_seconds, 10.0),
    )
    authorize = None
    if settings.metrics_auth == "admin":

        def authorize(header: str | None) -> bool:
            scheme, _, secret = (header or "").strip().partition(" ")
            if scheme.lower() not in {"bearer", "token"} or not secret.strip():
                return False
            key = catalog.authenticate(secret.strip())
            return key is not None and key.allows(KeyScope.ADMIN)

    try:
        ops = OpsServer(observability, settings.host, settings.metrics_port, authorize)
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.metrics_port}: {exc.strerror}")
    ops.start()
    return ops
