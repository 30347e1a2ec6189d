"""The sweeper: Complete reports become Expired after the retention, files go away.

It also deletes the files of DELETEd requests, any file a Failed request's last
attempt put before it died, and files no request owns: a worker killed between
putting its file and marking the request Complete, or a sweeper killed between
expiring a request and deleting its file, leaves one behind. It runs on a timer
inside ``mdr serve`` (and any worker); tests call :meth:`Sweeper.sweep`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.files.base import FileStore
from mdr_reporting.worker.worker import key_request_id

__all__ = ["ORPHAN_GRACE", "SweepResult", "Sweeper"]

log = logging.getLogger("mdr.sweeper")

# Files younger than this are never orphans: it covers a clock skew between the store
# (an S3 server's LastModified) and this host; in-flight builds are protected anyway.
ORPHAN_GRACE = timedelta(minutes=5)
_OWNER_CHUNK = 500


@dataclass(frozen=True)
class SweepResult:
    expired: int
    purged: int
    orphans: int = 0


class Sweeper:
    """Expiry and purge on every pass; the orphan sweep on the first pass and every
    ``orphan_every`` passes after it (it lists the whole store)."""

    def __init__(
        self,
        queue: JobQueue,
        files: FileStore,
        *,
        interval: float = 60.0,
        batch: int = 500,
        orphan_grace: timedelta | None = None,
        orphan_every: int = 10,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.queue = queue
        self.files = files
        self.interval = interval
        self.batch = batch
        self.orphan_grace = (
            max(queue.lease * 2, ORPHAN_GRACE) if orphan_grace is None else orphan_grace
        )
        self.orphan_every = max(orphan_every, 1)
        self.wall_clock = wall_clock
        self._passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> SweepResult:
        """One pass; the catalog is updated first, so no link ever points at a deleted file."""
        expired = self._drain(self.queue.expire_due)
        purged = self._drain(self.queue.purge_deleted) + self._drain(self.queue.purge_failed)
        orphans = self.sweep_orphans() if self._passes % self.orphan_every == 0 else 0
        self._passes += 1
        if expired or purged:
            log.info("expired %d report(s), removed %d deleted report file(s)", expired, purged)
        return SweepResult(expired, purged, orphans)

    def sweep_orphans(self) -> int:
        """Delete files older than the grace that no request owns; returns how many.

        A file is kept when its request serves it (or must still purge it), or when its
        request is Pending under a lease: its build may be between put and Complete. Any
        other file can never become owned, since every build puts under a fresh key.
        The store is listed before the catalog is read, so a build that completes in
        between is seen Complete.
        """
        cutoff = self.wall_clock() - self.orphan_grace
        removed = 0
        chunk: dict[str, list[str]] = {}
        for stored in self.files.list():
            if stored.modified >= cutoff:
                continue
            chunk.setdefault(key_request_id(stored.key), []).append(stored.key)
            if len(chunk) >= _OWNER_CHUNK:
                removed += self._remove_unowned(chunk)
                chunk = {}
        if chunk:
            removed += self._remove_unowned(chunk)
        partials = self.files.remove_partials(cutoff)
        if removed or partials:
            log.info("removed %d orphan report file(s), %d partial upload(s)", removed, partials)
        return removed

    def _remove_unowned(self, keys: dict[str, list[str]]) -> int:
        owners = self.queue.file_owners(keys)
        removed = 0
        for request_id, request_keys in keys.items():
            owner = owners.get(request_id)
            if owner is not None and owner.building:
                continue
            for key in request_keys:
                if owner is not None and owner.file_key == key:
                    continue
                try:
                    removed += self.files.delete(key)
                except OSError:
                    log.warning("could not delete orphan file %s", key, exc_info=True)
        return removed

    def _drain(self, batch: Callable[[int], list[tuple[str, str | None]]]) -> int:
        total = 0
        while done := batch(self.batch):
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
            started = time.monotonic()
            try:
                self.sweep()
            except Exception:
                log.exception("sweep failed; trying again later")
            if self._stop.wait(max(self.interval - (time.monotonic() - started), 0.0)):
                return
