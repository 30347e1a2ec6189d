"""Prometheus metrics (``prometheus-client``): what this process did, and figures read
from the catalog and the lake when ``/metrics`` is scraped.

Counters and histograms live in the process's default registry, so the HTTP calls,
builds and ingests of ``mdr serve`` (API and worker in one process) or of one
``mdr worker`` are counted where they happen. Queue depth and lake size are shared
state, read at scrape time by :class:`SharedState` (the lake's figures cached briefly:
they cost a manifest read).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mdr_reporting.catalog import Catalog
    from mdr_reporting.lake import Lake

__all__ = [
    "BUILDS",
    "BUILD_SECONDS",
    "CONTENT_TYPE_LATEST",
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "INGEST_BATCHES",
    "INGEST_ROWS",
    "WEBHOOK_DELIVERIES",
    "SharedState",
    "exposition",
    "forward_to",
    "observe_build",
    "observe_heartbeat",
    "observe_http",
    "observe_ingest",
    "observe_webhook",
    "replay",
]

HTTP_REQUESTS = Counter(
    "mdr_http_requests",
    "HTTP calls answered, by method, route template and status",
    ("method", "route", "status"),
)
HTTP_SECONDS = Histogram(
    "mdr_http_request_duration_seconds",
    "Time from the first byte of a call to the end of its answer, by method and route template",
    ("method", "route"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BUILDS = Counter(
    "mdr_builds",
    "Report builds that ended, by outcome: complete, failed (for good), retried (an attempt "
    "failed, the request waits for another), cancelled (deleted while building), "
    "handed_back (the worker stopped), storage_full",
    ("outcome",),
)
BUILD_SECONDS = Histogram(
    "mdr_build_duration_seconds",
    "Wall time of a report build, by outcome",
    ("outcome",),
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)
BUILD_ROWS = Counter("mdr_build_rows", "Rows written into completed reports")
INGEST_ROWS = Counter("mdr_ingest_rows", "Records accepted into the lake (HTTP and mdr ingest)")
INGEST_BATCHES = Counter(
    "mdr_ingest_batches", "Ingest batches (an HTTP call or a file), by outcome", ("outcome",)
)
WEBHOOK_DELIVERIES = Counter(
    "mdr_webhook_deliveries",
    "Webhook delivery attempts, by outcome (delivered, retry, gave_up)",
    ("outcome",),
)
WORKER_HEARTBEAT = Gauge(
    "mdr_worker_heartbeat_timestamp_seconds",
    "Unix time of the last sign of life of this process's report worker (0: none)",
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    """Count one HTTP call; label children are looked up once per (method, route, status)."""
    key = (method, route, status)
    children = _http_children.get(key)
    if children is None:
        label = method if method in _METHODS else "OTHER"
        children = (
            HTTP_REQUESTS.labels(label, route, str(status)),
            HTTP_SECONDS.labels(label, route),
        )
        if len(_http_children) < 10_000:  # unknown methods must not grow this without bound
            _http_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


# A worker running as the child process of ``mdr serve`` (cli/worker_process.py) sends its
# figures to the server, whose /metrics shows them: set by forward_to in the child.
_forward: Callable[[str, tuple[Any, ...]], None] | None = None


def forward_to(send: Callable[[str, tuple[Any, ...]], None] | None) -> None:
    """Send this process's worker figures (builds, webhooks, heartbeat) to ``send``
    instead of counting them here; ``replay`` counts them in the receiving process."""
    global _forward
    _forward = send


def replay(kind: str, args: tuple[Any, ...]) -> None:
    """Count a figure a child process forwarded (an unknown kind is ignored)."""
    observer = _OBSERVERS.get(kind)
    if observer is not None:
        observer(*args)


def observe_heartbeat(unix_time: float) -> None:
    if _forward is not None:
        _forward("heartbeat", (unix_time,))
        return
    WORKER_HEARTBEAT.set(unix_time)


def observe_webhook(outcome: str) -> None:
    if _forward is not None:
        _forward("webhook", (outcome,))
        return
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def observe_build(outcome: str, seconds: float, rows: int = 0) -> None:
    if _forward is not None:
        _forward("build", (outcome, seconds, rows))
        return
    BUILDS.labels(outcome).inc()
    BUILD_SECONDS.labels(outcome).observe(seconds)
    if rows:
        BUILD_ROWS.inc(rows)


_OBSERVERS: dict[str, Callable[..., None]] = {
    "build": observe_build,
    "heartbeat": observe_heartbeat,
    "webhook": observe_webhook,
}


def observe_ingest(rows: int, ok: bool = True) -> None:
    INGEST_BATCHES.labels("stored" if ok else "refused").inc()
    if rows:
        INGEST_ROWS.inc(rows)


class SharedState(Collector):
    """Queue depth from the catalog and lake size from its manifest, read at scrape time.

    A figure that cannot be read is left out of the scrape (and ``mdr_scrape_errors``
    says which), so one slow or broken backend does not hide the others.
    """

    def __init__(
        self,
        catalog: Catalog | None,
        lake: Lake | None,
        *,
        lake_ttl: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.lake = lake
        self.lake_ttl = lake_ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._lake_at = -float("inf")
        self._lake_figures: tuple[int, int, int, int] | None = None

    def lake_figures(self) -> tuple[int, int, int, int] | None:
        """(rows, files, bytes, days) of the lake, at most ``lake_ttl`` seconds old."""
        if self.lake is None:
            return None
        with self._lock:
            now = self.clock()
            if self._lake_figures is None or now - self._lake_at >= self.lake_ttl:
                stats = self.lake.stats()
                self._lake_figures = (stats.rows, stats.files, stats.bytes, len(stats.days))
                self._lake_at = now
            return self._lake_figures

    def collect(self) -> Iterable[GaugeMetricFamily]:
        errors = GaugeMetricFamily(
            "mdr_scrape_errors", "1 when a figure could not be read at this scrape", labels=["of"]
        )
        if self.catalog is not None:
            from mdr_reporting.catalog.stats import queue_depth

            try:
                depth = queue_depth(self.catalog)
            except Exception:
                errors.add_metric(["queue"], 1)
            else:
                queue = GaugeMetricFamily(
                    "mdr_queue_depth",
                    "Requests not yet finished: pending (waiting for a worker) and building",
                    labels=["state"],
                )
                queue.add_metric(["pending"], depth.pending)
                queue.add_metric(["building"], depth.building)
                yield queue
        try:
            figures = self.lake_figures()
        except Exception:
            errors.add_metric(["lake"], 1)
            figures = None
        if figures is not None:
            rows, files, size, days = figures
            for name, text, value in (
                ("mdr_lake_rows", "Rows in the lake (every version)", rows),
                ("mdr_lake_files", "Parquet files in the lake", files),
                ("mdr_lake_bytes", "Bytes of the lake's Parquet files", size),
                ("mdr_lake_days", "UTC days with records in the lake", days),
            ):
                yield GaugeMetricFamily(name, text, value=value)
        yield errors


def exposition(shared: CollectorRegistry | None = None) -> bytes:
    """The Prometheus text of this process's metrics, then of ``shared``'s figures."""
    text = generate_latest(REGISTRY)
    if shared is not None:
        text += generate_latest(shared)
    return text
