"""What operators see of a running process: log lines, Prometheus metrics, health.

- :mod:`.logs`: text or JSON lines on stderr, every one scrubbed of secrets.
- :mod:`.http`: the per-call access line and HTTP metrics (a pure ASGI middleware).
- :mod:`.metrics`: counters and histograms, and the queue and lake figures read at scrape.
- :mod:`.health`: readiness checks, and the ops server of ``mdr worker --metrics-port``.
"""

from mdr_reporting.observability.builds import build_finished
from mdr_reporting.observability.health import Observability, OpsServer
from mdr_reporting.observability.http import ACCOUNT_KEY, AccessLog
from mdr_reporting.observability.logs import configure_logging
from mdr_reporting.observability.metrics import (
    CONTENT_TYPE_LATEST,
    WEBHOOK_DELIVERIES,
    observe_build,
    observe_http,
    observe_ingest,
)

__all__ = [
    "ACCOUNT_KEY",
    "CONTENT_TYPE_LATEST",
    "WEBHOOK_DELIVERIES",
    "AccessLog",
    "Observability",
    "OpsServer",
    "build_finished",
    "configure_logging",
    "observe_build",
    "observe_http",
    "observe_ingest",
]
