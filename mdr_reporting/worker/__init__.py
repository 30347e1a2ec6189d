"""The report worker: claims requests from the catalog, builds them, stores the files.

Plug an engine in through :class:`ReportBuilder`; :mod:`mdr_reporting.worker.testing`
has a fake one that writes real files.
"""

from mdr_reporting.worker.builder import BuildCancelled, BuildResult, ReportBuilder
from mdr_reporting.worker.runtime import (
    Background,
    EngineUnavailable,
    job_queue,
    report_builder,
)
from mdr_reporting.worker.sweeper import Sweeper, SweepResult
from mdr_reporting.worker.worker import Worker, new_worker_id

__all__ = [
    "Background",
    "BuildCancelled",
    "BuildResult",
    "EngineUnavailable",
    "ReportBuilder",
    "SweepResult",
    "Sweeper",
    "Worker",
    "job_queue",
    "new_worker_id",
    "report_builder",
]
