"""Liveness and readiness, and the small HTTP server ``mdr worker --metrics-port`` runs.

``/healthz`` answers 200 while the process serves at all. ``/readyz`` answers 200 when
the catalog answers a query, the lake's manifest can be read and, in a process that
runs a report worker, that worker showed a sign of life within ``max_age`` seconds
(its poll loop or a lease renewal); otherwise 503 with every reason.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from mdr_reporting.observability.metrics import (
    CONTENT_TYPE_LATEST,
    SharedState,
    exposition,
)

if TYPE_CHECKING:
    from mdr_reporting.catalog import Catalog
    from mdr_reporting.lake import Lake

__all__ = ["Observability", "OpsServer"]

log = logging.getLogger("mdr.ops")


class Observability:
    """The readiness checks and the scrape-time figures of one process's backends."""

    def __init__(
        self,
        catalog: Catalog | None,
        lake: Lake | None,
        *,
        worker_alive: Callable[[], float | None] | None = None,
        max_age: float = 60.0,
    ) -> None:
        self.catalog = catalog
        self.lake = lake
        self.worker_alive = worker_alive  # monotonic time of the worker's last sign of life
        self.max_age = max_age
        self.shared = SharedState(catalog, lake)
        # a registry of its own: tests build many apps in one process
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.shared)

    def problems(self) -> list[str]:
        """Why this process is not ready (empty when it is)."""
        reasons = []
        if self.catalog is not None:
            from mdr_reporting.catalog.stats import ping

            try:
                ping(self.catalog)
            except Exception as exc:
                reasons.append(f"catalog unreachable: {_one_line(exc)}")
        try:
            self.shared.lake_figures()
        except Exception as exc:
            reasons.append(f"lake unreadable: {_one_line(exc)}")
        if self.worker_alive is not None:
            alive = self.worker_alive()
            if alive is None:
                reasons.append("report worker not running")
            else:
                age = time.monotonic() - alive
                if age > self.max_age:
                    reasons.append(f"report worker silent for {age:.0f} s")
        return reasons

    def ready(self) -> tuple[int, dict[str, Any]]:
        reasons = self.problems()
        if reasons:
            return 503, {"status": "unavailable", "reasons": reasons}
        return 200, {"status": "ready"}

    def metrics(self) -> bytes:
        return exposition(self.registry)


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause) or type(cause).__name__
    return " ".join(text.split())[:300]


class OpsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on their own port, for a process without
    the API (``mdr worker --metrics-port``). ``authorize`` gets the Authorization header
    of a ``/metrics`` call and says whether to answer it."""

    def __init__(
        self,
        observability: Observability,
        host: str,
        port: int,
        authorize: Callable[[str | None], bool] | None = None,
    ) -> None:
        handler = _handler(observability, authorize)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="mdr-ops-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def _handler(
    observability: Observability, authorize: Callable[[str | None], bool] | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mdr"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, "application/json", b'{"status":"ok"}')
            elif path == "/readyz":
                status, body = observability.ready()
                self._send(status, "application/json", json.dumps(body).encode())
            elif path == "/metrics":
                if authorize is not None and not authorize(self.headers.get("Authorization")):
                    self._send(401, "application/json", b'{"status":"unauthorized"}')
                    return
                self._send(200, CONTENT_TYPE_LATEST, observability.metrics())
            else:
                self._send(404, "application/json", b'{"status":"not found"}')

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("ops %s", format % args)

    return Handler
