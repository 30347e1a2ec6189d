"""MDR usage reports (``/v2/reports/mdr_usage_reports``, the SDK's
``client.reports.mdr_usage_reports``): messages, parts and cost per group and direction.

:mod:`.params` reads the SDK's parameters, :mod:`.compute` sums the lake's latest
versions with DuckDB (exact decimals), :mod:`.store` keeps created reports and their
jobs in the catalog, and :mod:`.service` runs them (``fetch_sync`` at once, ``create``
on the worker through :class:`~.service.UsageJobs`).
"""

from mdr_reporting.usage.params import UsageQuery, parse_create_body, parse_fetch_params
from mdr_reporting.usage.service import UsageJobs, UsageService, render_report, render_stored
from mdr_reporting.usage.store import UsageStore

__all__ = [
    "UsageJobs",
    "UsageQuery",
    "UsageService",
    "UsageStore",
    "parse_create_body",
    "parse_fetch_params",
    "render_report",
    "render_stored",
]
