"""The expiry sweeper: Complete reports become Expired after the retention, files go away.

It also deletes the files of DELETEd requests, and any file a Failed request's last
attempt put before it died. It runs on a timer inside ``mdr serve``
(and any worker); tests call :meth:`Sweeper.sweep` with a controllable clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.files.base import FileStore

__all__ = ["SweepResult", "Sweeper"]

log = logging.getLogger("mdr.sweeper")


@dataclass(frozen=True)
class SweepResult:
    expired: int
    purged: int


class Sweeper:
    def __init__(self, queue: JobQueue, files: FileStore, *, interval: float = 60.0) -> None:
        self.queue = queue
        self.files = files
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> SweepResult:
        """One pass; the catalog is updated first, so no link ever points at a deleted file."""
        expired = self._drain(self.queue.expire_due)
        purged = self._drain(self.queue.purge_deleted) + self._drain(self.queue.purge_failed)
        if expired or purged:
            log.info("expired %d report(s), removed %d deleted report file(s)", expired, purged)
        return SweepResult(expired, purged)

    def _drain(self, batch: Callable[[], list[tuple[str, str | None]]]) -> int:
        total = 0
        while done := batch():
            for request_id, key in done:
                if key is None:
                    continue
                try:
                    self.files.delete(key)
                except OSError:
                    log.warning("could not delete the file of %s", request_id, exc_info=True)
            total += len(done)
        return total

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mdr-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:
                log.exception("expiry sweep failed; trying again later")
            if self._stop.wait(self.interval):
                return
