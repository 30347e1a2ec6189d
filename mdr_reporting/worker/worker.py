"""The report worker: claim a request, build it, store the file, mark it Complete.

Each slot is a thread that loops claim -> build -> record the file key -> put ->
complete; the key is recorded first so that a file put by a worker that dies before
Complete is found and removed by the next attempt or the sweeper. While a build
runs, a heartbeat thread renews the lease; when a renewal or a progress write finds
the lease gone (the request was DELETEd, or the lease expired and another worker
took over) the build is cancelled and its file discarded. State lives in the
catalog only, so any number of workers in any number of processes can share it.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from mdr_reporting.catalog.jobs import Claim, JobQueue
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.errors import storage_full
from mdr_reporting.files.base import FileStore
from mdr_reporting.files.downloads import download_filename
from mdr_reporting.files.formats import file_format
from mdr_reporting.observability import build_finished
from mdr_reporting.observability.metrics import observe_heartbeat
from mdr_reporting.owner_only import private_dir
from mdr_reporting.worker.builder import BuildCancelled, ReportBuilder
from mdr_reporting.worker.scratch import BuildFolder, sweep_build_folders

__all__ = ["Worker", "customer_reason", "key_request_id", "new_worker_id", "report_file_key"]

log = logging.getLogger("mdr.worker")


def new_worker_id() -> str:
    """Host, pid and a random tag: unique across restarts, readable in the catalog."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


def report_file_key(request_id: str, token: str, suffix: str) -> str:
    """Where a build puts its file: under the request's id, with a fresh token per build."""
    return f"{request_id}/{token}{suffix}"


def key_request_id(key: str) -> str:
    """The request a report file was built for (the inverse of :func:`report_file_key`)."""
    return key.partition("/")[0]


class SideJob(Protocol):
    """Other queued work the slots take when no report waits (e.g. usage reports)."""

    def run_once(self, owner: str) -> bool:
        """Do one unit of work; False when there was none."""


class _Job:
    """One claimed request while it builds: its cancel flag, heartbeat and progress writes."""

    def __init__(self, worker: Worker, claim: Claim) -> None:
        self.worker = worker
        self.claim = claim
        self.lost = threading.Event()
        self._done = threading.Event()
        self._last_progress = 0.0
        self.started = time.perf_counter()
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"mdr-heartbeat-{claim.state.id[:8]}", daemon=True
        )

    @property
    def request_id(self) -> str:
        return self.claim.state.id

    def cancelled(self) -> bool:
        return self.lost.is_set() or self.worker.stopping

    def progress(self, value: float) -> None:
        now = time.monotonic()
        if now - self._last_progress < self.worker.progress_interval and value < 1.0:
            return
        self._last_progress = now
        try:
            if not self.worker.queue.set_progress(self.request_id, self.claim.owner, value):
                self.lost.set()
        except Exception:  # a catalog hiccup must not fail the build; the heartbeat retries
            log.warning("progress write for %s failed", self.request_id, exc_info=True)

    def _beat(self) -> None:
        while not self._done.wait(self.worker.heartbeat_interval):
            try:
                if not self.worker.queue.renew(self.request_id, self.claim.owner):
                    self.lost.set()
                    return
                self.worker.alive()
            except Exception:
                log.warning("lease renewal for %s failed", self.request_id, exc_info=True)

    def __enter__(self) -> _Job:
        self._heartbeat.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._heartbeat.join()


class Worker:
    """Builds reports in ``concurrency`` threads until :meth:`stop`."""

    def __init__(
        self,
        queue: JobQueue,
        files: FileStore,
        builder: ReportBuilder,
        *,
        concurrency: int = 1,
        poll_interval: float = 0.25,
        heartbeat_interval: float | None = None,
        progress_interval: float = 0.5,
        retry_after: timedelta = timedelta(seconds=5),
        work_dir: Path | None = None,
        worker_id: str | None = None,
        sweep_interval: float = 60.0,
        side_jobs: Sequence[SideJob] = (),
    ) -> None:
        self.queue = queue
        self.files = files
        self.builder = builder
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        lease_seconds = queue.lease.total_seconds()
        self.heartbeat_interval = heartbeat_interval or max(lease_seconds / 3, 0.05)
        self.progress_interval = progress_interval
        self.retry_after = retry_after
        self.work_dir = work_dir or Path(tempfile.gettempdir())
        self.worker_id = worker_id or new_worker_id()
        self.sweep_interval = sweep_interval  # stale build folders are removed this often
        self.side_jobs = tuple(side_jobs)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.handed_back = 0  # builds given back to the queue by stop()
        self.alive_at = time.monotonic()  # last sign of life: a poll or a lease renewal

    def alive(self) -> None:
        self.alive_at = time.monotonic()
        observe_heartbeat(time.time())

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        private_dir(self.work_dir)
        sweep_build_folders(self.work_dir)  # what builds killed before this start left
        sweeper = threading.Thread(target=self._sweep_loop, name="mdr-build-sweep", daemon=True)
        sweeper.start()
        self._threads.append(sweeper)
        for slot in range(self.concurrency):
            thread = threading.Thread(
                target=self._loop, args=(slot,), name=f"mdr-worker-{slot}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("report worker %s started with %d slot(s)", self.worker_id, self.concurrency)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel running builds (their requests go back to the queue) and wait for the slots."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._threads.clear()

    def _sweep_loop(self) -> None:
        """Builds of other workers on this work folder may be killed at any time too."""
        while not self._stop.wait(self.sweep_interval):
            try:
                sweep_build_folders(self.work_dir)
            except Exception:
                log.exception("the build folder sweep failed; trying again later")

    def wake(self) -> None:
        """Look for work now instead of at the next poll (e.g. right after a create)."""
        self._wake.set()

    def run_forever(self) -> None:
        """Start, then block until :meth:`stop` is called from another thread or a signal."""
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def _loop(self, slot: int) -> None:
        owner = f"{self.worker_id}/{slot}"
        while not self._stop.is_set():
            self.alive()
            try:
                worked = self.run_once(owner) or any(j.run_once(owner) for j in self.side_jobs)
            except Exception:  # the catalog is unreachable: wait and try again
                log.exception("report worker slot %d could not claim work", slot)
                worked = False
            if not worked:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    # -- one job --------------------------------------------------------------------------

    def run_once(self, owner: str | None = None) -> bool:
        """Claim and build one request; False when there was nothing to claim."""
        claim = self.queue.claim(owner or f"{self.worker_id}/0")
        if claim is None:
            return False
        self._build(claim)
        return True

    def _build(self, claim: Claim) -> None:
        state = claim.state
        suffix = file_format(state.spec.format).suffix
        token = secrets.token_hex(8)
        log.info("building report %s (attempt %d)", state.id, claim.attempt)
        # A failed or cancelled attempt hands its request back only once its build folder
        # is gone: whoever sees the attempt over (another worker, the sweeper, a test)
        # never sees its files.
        hand_back: Callable[[], None] | None = None
        with BuildFolder(self.work_dir) as folder, _Job(self, claim) as job:
            out_path = folder.path / f"report{suffix}"
            try:
                if state.file_key is not None:  # put by an attempt that died before Complete
                    self.files.delete(state.file_key)
                result = self.builder.build(
                    state, out_path, progress=job.progress, cancelled=job.cancelled
                )
                if job.cancelled():
                    raise BuildCancelled
                key = report_file_key(state.id, token, suffix)
                if not self.queue.record_file(state.id, claim.owner, key):
                    job.lost.set()
                    raise BuildCancelled
                if result.reused_key is not None:  # an equal report's file (worker/reuse.py)
                    size = self.files.copy(result.reused_key, key, folder.path)
                else:
                    filename = download_filename(state.spec.report_name, state.spec.format)
                    size = self.files.put(key, out_path, filename=filename)
                done = self.queue.complete(
                    state.id,
                    claim.owner,
                    file_key=key,
                    record_count=result.record_count,
                    size_bytes=size,
                    engine=result.engine,
                    fingerprint=result.fingerprint,
                    reused_from=result.reused_from,
                )
                if not done:  # deleted (or taken over) between the build and now
                    self.files.delete(key)
                    log.info("report %s was cancelled as it completed", state.id)
                    self._finished(job, "cancelled")
                else:
                    self._finished(
                        job, "complete", rows=result.record_count, size=size, engine=result.engine
                    )
            except BuildCancelled:
                hand_back = functools.partial(self._cancelled, job)
            except Exception as exc:
                if job.cancelled():
                    # a builder may fail noisily once cancelled
                    hand_back = functools.partial(self._cancelled, job)
                elif storage_full(exc):
                    hand_back = functools.partial(self._after_storage_full, job, exc)
                else:
                    hand_back = functools.partial(self._after_failure, job, exc)
        if hand_back is not None:
            hand_back()

    def _after_storage_full(self, job: _Job, exc: Exception) -> None:
        self._storage_full(job.claim, exc)
        self._finished(job, "storage_full")

    def _after_failure(self, job: _Job, exc: Exception) -> None:
        self._finished(job, self._failed(job.claim, exc))

    def _finished(
        self, job: _Job, outcome: str, *, rows: int = 0, size: int = 0, engine: str | None = None
    ) -> None:
        """The build's log line and metrics (observability.build_finished)."""
        build_finished(
            job.claim.state,
            outcome,
            time.perf_counter() - job.started,
            rows=rows,
            size=size,
            attempt=job.claim.attempt,
            engine=engine,
        )

    def _cancelled(self, job: _Job) -> None:
        if not job.lost.is_set():  # the worker is stopping: hand the request back
            self.queue.release(job.request_id, job.claim.owner)
            self.handed_back += 1
            log.info("report %s handed back: the worker is stopping", job.request_id)
            self._finished(job, "handed_back")
        else:
            log.info("report %s cancelled: deleted or lease lost", job.request_id)
            self._finished(job, "cancelled")

    def _storage_full(self, claim: Claim, exc: Exception) -> None:
        """A full disk is the operator's to fix: the request waits, its attempts untouched."""
        self.queue.fail_attempt(
            claim.state.id,
            claim.owner,
            "storage full",
            retry_after=self.retry_after,
            spend_attempt=False,
        )
        log.error("report %s waits: the disk is full (%s)", claim.state.id, exc)

    def _failed(self, claim: Claim, exc: Exception) -> str:
        """Record the failed attempt; ``failed`` when it was the last, else ``retried``."""
        detail = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        outcome = self.queue.fail_attempt(
            claim.state.id, claim.owner, customer_reason(exc), retry_after=self.retry_after
        )
        # The operator's log has the detail (paths, exception text); the customer never does.
        if outcome is not None and outcome.status is RequestStatus.FAILED:
            log.error(
                "report %s failed after %d attempts: %s",
                claim.state.id,
                outcome.attempts,
                detail,
                exc_info=exc,
            )
            return "failed"
        log.warning("report %s attempt %d failed: %s", claim.state.id, claim.attempt, detail)
        return "retried"


def customer_reason(exc: BaseException) -> str:
    """What a customer reads in a Failed request's ``error``: what went wrong and what to do
    about it, in words, never a path or an exception's own text (those may name files)."""
    # An engine's out-of-memory error is known by name, so the worker imports no engine.
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryException":
        return (
            "the report needs more memory than one build may use: create it again with a "
            "shorter time window or more filters"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the service ran out of disk space while building the report: create it again later"
    return (
        "the report could not be built because of an error in the service, after every "
        "retry: create it again later, or contact support with this request's id"
    )
