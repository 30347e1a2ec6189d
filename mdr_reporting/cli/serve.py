"""`mdr serve` and `mdr demo`: the API (and, embedded, the worker) in one process."""

from __future__ import annotations

import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import click
import uvicorn

from mdr_reporting.api import Services, create_app
from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.cli.admin import lake_in_catalog, open_catalog, open_files, open_record_lake
from mdr_reporting.cli.common import configure_logging, fail, load, settings_options
from mdr_reporting.cli.worker_process import WorkerProcess
from mdr_reporting.files import LinkSigner
from mdr_reporting.settings import Settings
from mdr_reporting.worker import Background, EngineUnavailable, ReportBuilder, report_builder

__all__ = ["build_services", "demo", "demo_lines", "download_line", "run_server", "serve"]

DEMO_ACCOUNT = "acct-01"
DEMO_REPORT_FILE = "mdr-demo-report.csv"

# Reads the newest request from GET's bare JSON list: prints its report_url once it is
# Complete, exits 1 while it is Pending, and explains a Failed or Expired one on stderr.
_NEWEST_REPORT = (
    'import json,sys; r=json.load(sys.stdin)[0]; s=r["status"]; '
    's == 2 and print(r["report_url"]); '
    's > 2 and print("report not available:", r["error"] or s, file=sys.stderr); '
    "sys.exit(s == 1)"
)


def build_services(settings: Settings, catalog: Catalog | None = None) -> Services:
    """Every backend of the settings, or a one-line exit naming the first that cannot be used.

    The catalog comes last (its migration is the one step that changes shared state),
    except before a lake whose manifest lives in it.
    """
    files = open_files(settings)
    lake = None if lake_in_catalog(settings) else open_record_lake(settings)
    catalog = catalog or open_catalog(settings)
    lake = lake or open_record_lake(settings)
    links = LinkSigner(
        settings.signing_secret,
        settings.public_url,
        timedelta(seconds=settings.link_ttl_seconds),
        catalog.clock,
        old_secrets=settings.signing_old_secrets,
    )
    return Services(
        settings=settings,
        catalog=catalog,
        clock=catalog.clock,
        files=files,
        links=links,
        lake=lake,
    )


def _check_port_free(host: str, port: int) -> None:
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror} (pass --port to choose another)")


def run_server(
    settings: Settings,
    services: Services,
    on_ready: Callable[[str], None] | None = None,
    builder: ReportBuilder | None = None,
) -> None:
    """Serve until interrupted; ``on_ready`` gets the base URL once requests are accepted.

    With ``settings.with_worker`` the report worker (building with ``builder``, by
    default the engine of the settings) and the expiry sweeper run beside the API: for
    the DuckDB engine, in a child process supervised by this one (its builds do not hold
    the API's GIL); with a given ``builder`` or another engine, in this process.
    """
    _check_port_free(settings.host, settings.port)
    # The DuckDB worker runs in a child process (see worker_process); a builder given by
    # the caller, or another engine, runs in this process.
    in_child = settings.with_worker and builder is None and settings.engine == "duckdb"
    if settings.with_worker and builder is None and not in_child:
        try:  # before serving: a missing or unreachable engine stops start-up
            builder = report_builder(settings, services.lake)
        except EngineUnavailable as exc:
            fail(str(exc))
    app = create_app(services)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's lines go through our handler, format and redaction
        access_log=False,  # the mdr.http line (observability.http) replaces it
        lifespan="on",
        server_header=False,  # no "Server: uvicorn": the answer does not name the stack
    )
    server = _Server(config)

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        port = settings.port
        if port == 0 and server.servers:
            port = server.servers[0].sockets[0].getsockname()[1]
        host = settings.host if settings.host not in {"0.0.0.0", "::"} else "127.0.0.1"  # noqa: S104
        url = settings.public_url if settings.port else f"http://{host}:{port}"
        (on_ready or (lambda u: click.echo(f"mdr serving on {u}", err=False)))(url)

    threading.Thread(target=announce, name="mdr-announce", daemon=True).start()
    background: Background | WorkerProcess | None = None
    if in_child:
        child = WorkerProcess(settings)
        child.start()
        services.requests.on_created = lambda _state: child.wake()
        services.observability.worker_alive = lambda: child.alive_at
        background = child
    elif settings.with_worker:
        background = Background(
            settings,
            services.catalog,
            services.files,
            builder,
        )
        background.start()
        if background.worker is not None:
            worker = background.worker
            services.observability.worker_alive = lambda: worker.alive_at
            wake = worker.wake
            services.requests.on_created = lambda _state: wake()
    try:
        server.run()
    finally:
        if background is not None:
            background.stop()
        services.catalog.close()
    if server.stopped_by is not None:
        if isinstance(background, WorkerProcess):
            handed = background.handed_back
        elif background is not None and background.worker is not None:
            handed = background.worker.handed_back
        else:
            handed = 0
        click.echo(
            f"mdr stopped ({signal.Signals(server.stopped_by).name}): {handed} build(s) "
            "handed back to the queue",
            err=True,
        )


class _Server(uvicorn.Server):
    """uvicorn's server, except that Ctrl-C or SIGTERM ends ``run`` normally (exit 0 once
    the builds are handed back) instead of re-raising the signal afterwards."""

    stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopped_by = sig
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


_server_options = [
    click.option("--host", default=None, help="Listen address (MDR_HOST; default 127.0.0.1)."),
    click.option("--port", default=None, help="Listen port (MDR_PORT; default 8000)."),
]


def _with_server_options(func: Any) -> Any:
    for option in reversed(_server_options):
        func = option(func)
    return func


@click.command()
@_with_server_options
@click.option(
    "--with-worker/--without-worker",
    default=None,
    help="Run the report worker in this process (default: on for the embedded default).",
)
@settings_options
def serve(host: str | None, port: str | None, with_worker: bool | None, **flags: Any) -> None:
    """Run the API (and on the embedded default the worker and sweeper) in one process."""
    settings = load(host=host, port=port, with_worker=with_worker, **flags)
    configure_logging(settings)
    _check_port_free(settings.host, settings.port)  # before any backend is touched
    run_server(settings, build_services(settings))


@click.command()
@_with_server_options
@click.option(
    "--records",
    type=click.IntRange(min=0),
    default=1_000_000,
    show_default=True,
    help="Synthetic records generated into an empty lake (last 30 days, 20 accounts).",
)
@settings_options
def demo(host: str | None, port: str | None, records: int, **flags: Any) -> None:
    """First run: demo records, account and key, then the server, with ready-to-paste curl lines."""
    from mdr_reporting.cli.records import load_demo_records

    settings = load(host=host, port=port, **flags)
    configure_logging(settings)
    catalog = open_catalog(settings)
    if catalog.get_account(DEMO_ACCOUNT) is None:
        catalog.create_account("Demo account", account_id=DEMO_ACCOUNT)
    services = build_services(settings, catalog)
    _check_port_free(settings.host, settings.port)
    load_demo_records(settings, catalog, records)
    key = catalog.create_key(DEMO_ACCOUNT, KeyScope.REPORTS).secret

    def ready(url: str) -> None:
        click.echo("\n".join(demo_lines(settings, url, key)))

    run_server(settings, services, on_ready=ready)


def demo_lines(settings: Settings, url: str, key: str) -> list[str]:
    """What ``mdr demo`` prints once serving: the key, a create line and a download line."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    body = (
        f'{{"start_time": "{(now - timedelta(days=7)).isoformat()}", '
        f'"end_time": "{now.isoformat()}", "directions": ["outbound"]}}'
    )
    curl = shlex.join(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            f"{url}/reporting/mdr_requests",
            "-H",
            f"Authorization: Bearer {key}",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ]
    )
    return [
        f"mdr serving on {url}  (API docs: {url}/docs; Ctrl-C stops)",
        f"data folder: {settings.data_dir}",
        f"demo account: {DEMO_ACCOUNT}",
        f"demo key (reports scope): {key}",
        f"web console: {url}/console  (sign in with the demo key)",
        "create a report request:",
        f"  {curl}",
        f"then wait for it and download it to {DEMO_REPORT_FILE}:",
        f"  {download_line(url, key)}",
        "",
    ]


def download_line(url: str, key: str) -> str:
    """A shell line that polls the newest request until Complete, then downloads its file.

    It uses only curl and the Python that runs ``mdr``; the link needs no API key.
    """
    poll = shlex.join(
        [
            "curl",
            "-sS",
            "-H",
            f"Authorization: Bearer {key}",
            f"{url}/reporting/mdr_requests?per_page=1",
        ]
    )
    parse = shlex.join([sys.executable, "-c", _NEWEST_REPORT])
    save = shlex.join(["curl", "-sSL", "-o", DEMO_REPORT_FILE])
    return (
        f"until link=$({poll} | {parse}); do sleep 1; done; "
        f'[ -n "$link" ] && {save} "$link" && echo "saved {DEMO_REPORT_FILE}"'
    )
