"""The worker and the expiry sweeper as the processes run them, built from the settings.

:func:`report_builder` is the one place where the report engine is plugged in.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING

from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.catalog.notify import Listener
from mdr_reporting.catalog.store import Catalog
from mdr_reporting.files import FileStore, open_file_store
from mdr_reporting.lake import Lake, open_lake
from mdr_reporting.settings import Settings
from mdr_reporting.webhooks.deliverer import webhook_deliverer
from mdr_reporting.worker.builder import ReportBuilder
from mdr_reporting.worker.lake_builder import LakeReportBuilder
from mdr_reporting.worker.reuse import ReusingBuilder
from mdr_reporting.worker.sweeper import Sweeper
from mdr_reporting.worker.worker import Worker, new_worker_id

if TYPE_CHECKING:
    from mdr_reporting.usage import UsageJobs

__all__ = ["Background", "EngineUnavailable", "job_queue", "report_builder"]

log = logging.getLogger("mdr.worker")

POLL_SECONDS = 0.25  # SQLite, or a worker in its own process: polling is the only signal
LISTEN_POLL_SECONDS = 2.0  # PostgreSQL: NOTIFY wakes idle workers, polling is the fallback


def job_queue(settings: Settings, catalog: Catalog) -> JobQueue:
    return JobQueue(
        catalog,
        lease=timedelta(seconds=settings.lease_seconds),
        max_attempts=settings.max_attempts,
        retention=timedelta(days=settings.report_retention_days),
    )


class EngineUnavailable(Exception):
    """The configured engine cannot run here; the message is one line for start-up."""


def report_builder(settings: Settings, lake: Lake | None = None) -> ReportBuilder:
    """The builder for ``settings.engine`` over the settings' lake.

    ``spark`` and ``auto`` check at once that pyspark is installed and the master
    answers, and raise :class:`EngineUnavailable` (one line) when not, so that
    start-up stops instead of serving without a worker.
    """
    from mdr_reporting.engines.duckdb import DuckDBEngine

    lake = lake or open_lake(settings.lake_url, settings)
    if settings.engine == "duckdb":
        return LakeReportBuilder(lake, DuckDBEngine())
    from mdr_reporting.engines.spark import SparkEngine, SparkUnavailable, check_spark
    from mdr_reporting.objectstore import S3Location

    try:
        check_spark(settings.spark_master)
    except SparkUnavailable as exc:
        raise EngineUnavailable(str(exc)) from None
    location = getattr(lake, "location", None)  # the S3 lake's: Spark reads it as s3a://
    spark = SparkEngine(
        settings.spark_master,
        dict(settings.spark_conf),
        s3=location if isinstance(location, S3Location) else None,
    )
    if settings.engine == "spark":
        return LakeReportBuilder(lake, spark, name="spark")
    return LakeReportBuilder(
        lake, DuckDBEngine(), large=("spark", spark), large_rows=settings.auto_spark_rows
    )


def _usage_jobs(catalog: Catalog, lake: Lake) -> tuple[UsageJobs]:
    """The usage reports' job, taken by the report worker's slots when no report waits."""
    from mdr_reporting.usage import UsageJobs, UsageService, UsageStore

    return (UsageJobs(UsageStore(catalog), UsageService(lake)),)


class Background:
    """The worker (when there is a builder), its LISTEN thread on PostgreSQL, the sweeper and
    the webhook senders, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        files: FileStore | None = None,
        builder: ReportBuilder | None = None,
        *,
        sweep_interval: float = 60.0,
    ) -> None:
        queue = job_queue(settings, catalog)
        files = files or open_file_store(settings.files_url, settings)
        listens = catalog.engine.dialect.name == "postgresql"
        lake = getattr(builder, "lake", None)  # the real builder's lake: usage reports too
        self.worker = (
            Worker(
                queue,
                files,
                ReusingBuilder(builder, queue),
                concurrency=settings.worker_concurrency,
                # with LISTEN, polling only finds expired leases and retries: less often
                poll_interval=LISTEN_POLL_SECONDS if listens else POLL_SECONDS,
                work_dir=settings.data_dir / "work",
                side_jobs=_usage_jobs(catalog, lake) if isinstance(lake, Lake) else (),
            )
            if builder is not None
            else None
        )
        self.listener = (
            Listener(catalog.url, self.worker.wake) if listens and self.worker is not None else None
        )
        self.sweeper = Sweeper(queue, files, interval=sweep_interval)
        owner = self.worker.worker_id if self.worker is not None else new_worker_id()
        self.webhooks = webhook_deliverer(settings, catalog, owner=owner)

    def start(self) -> None:
        self.sweeper.start()
        self.webhooks.start()
        if self.worker is not None:
            self.worker.start()
        if self.listener is not None:
            self.listener.start()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        if self.worker is not None:
            self.worker.stop()
        self.webhooks.stop()
        self.sweeper.stop()

    def __enter__(self) -> Background:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()
