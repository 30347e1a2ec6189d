"""The report worker of `mdr serve` in a child process of its own (the embedded default).

A build is CPU-heavy Python and DuckDB work; in the API's process it would share the
GIL with the event loop and every request thread, so status reads would wait behind
it. In its own process it shares only the machine's cores, at a lower priority (nice
+10: a build still gets every idle cycle, but never delays a status read), and the
catalog (SQLite in WAL mode serves both processes).

The child is started with ``spawn`` (a fresh interpreter: it inherits no listening
socket, no lock and no thread of the API). Its one tie to the server is a pipe:

* each byte the server writes wakes the worker (a request was just created), so a new
  report starts at once instead of at the next poll;
* end of file (the server stopped, or died even by SIGKILL) stops the worker, whose
  running builds go back to the queue.

A second pipe carries the child's figures back: its builds, webhook deliveries and
heartbeats (counted in the server's ``/metrics``, and the heartbeat behind ``/readyz``),
and at the end how many builds it handed back (the server's goodbye line says it).

A supervisor thread in the server restarts a child that exits on its own, after a
pause that grows while it keeps failing.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from mdr_reporting.settings import Settings

__all__ = ["WorkerProcess"]

log = logging.getLogger("mdr.worker")

RESTART_PAUSE = 1.0  # seconds before restarting a child that exited; doubles up to the max
RESTART_PAUSE_MAX = 30.0
STOP_TIMEOUT = 45.0  # the worker's own stop waits up to 30 s for its slots
WORKER_NICENESS = 10  # added to the server's; the scheduler weighs it 1/9 of the API


class WorkerProcess:
    """Starts, wakes, supervises and stops the child process running the worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._pipe: Connection | None = None
        self._listener: threading.Thread | None = None  # reads the child's figures
        self._lock = threading.Lock()  # guards _process and _pipe
        self._stop = threading.Event()
        self._started_at = 0.0
        self.alive_at: float | None = None  # monotonic time of the child's last heartbeat
        self.handed_back = 0  # builds the children handed back to the queue as they stopped
        self._supervisor = threading.Thread(
            target=self._supervise, name="mdr-worker-supervisor", daemon=True
        )

    @property
    def pid(self) -> int | None:
        with self._lock:
            return None if self._process is None else self._process.pid

    def start(self) -> None:
        self._spawn()
        self._supervisor.start()

    def _spawn(self) -> None:
        reader, writer = self._context.Pipe(duplex=False)
        events_in, events_out = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_child,
            args=(self.settings, reader, events_out),
            name="mdr-worker",
            daemon=False,
        )
        process.start()
        self._started_at = time.monotonic()
        reader.close()  # the child holds its end: its EOF is our close or our death
        events_out.close()  # the child's end: EOF once the child is gone
        listener = threading.Thread(
            target=self._listen, args=(events_in,), name="mdr-worker-events", daemon=True
        )
        listener.start()
        with self._lock:
            self._process, self._pipe, self._listener = process, writer, listener

    def wake(self) -> None:
        """Tell the worker a request was created (never blocks the caller on a dead child)."""
        with self._lock:
            if self._pipe is None:
                return
            # a child that is gone is restarted by the supervisor, and a start polls
            with contextlib.suppress(OSError, ValueError):
                self._pipe.send_bytes(b"w")

    def _listen(self, events: Connection) -> None:
        """Count what the child reports until it is gone."""
        from mdr_reporting.observability.metrics import replay

        with events:
            while True:
                try:
                    kind, args = events.recv()
                except (EOFError, OSError):
                    return
                except Exception:  # a message that does not unpickle: skip it
                    log.exception("a message from the report worker process was unreadable")
                    continue
                if kind == "heartbeat":
                    self.alive_at = time.monotonic()
                elif kind == "handed_back":
                    self.handed_back += int(args[0])
                    continue
                replay(kind, args)

    def _supervise(self) -> None:
        pause = RESTART_PAUSE
        while not self._stop.is_set():
            with self._lock:
                process = self._process
            process.join(timeout=0.5)
            if process.is_alive() or self._stop.is_set():
                continue
            if time.monotonic() - self._started_at > 60:
                pause = RESTART_PAUSE  # it ran a while: not a crash loop
            log.error(
                "the report worker process exited with code %s; restarting it in %.0f s",
                process.exitcode,
                pause,
            )
            with self._lock:
                if self._pipe is not None:
                    self._pipe.close()
                    self._pipe = None
            if self._stop.wait(pause):
                return
            self._spawn()
            pause = min(pause * 2, RESTART_PAUSE_MAX)

    def stop(self) -> None:
        """Close the pipe (the worker stops and hands its builds back), then wait for it."""
        self._stop.set()
        with self._lock:
            process, pipe = self._process, self._pipe
            self._pipe = None
        if pipe is not None:
            pipe.close()
        if process is None:
            return
        process.join(STOP_TIMEOUT)
        if process.is_alive():
            log.warning("the report worker process did not stop in time: terminating it")
            process.terminate()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        if self._supervisor.is_alive():
            self._supervisor.join(5)
        with self._lock:
            listener = self._listener
        if listener is not None:  # the child is gone: its last figures (handed back) are read
            listener.join(5)


def run_child(settings: Settings, wakes: Connection, events: Connection) -> None:
    """The child's main: the worker and sweeper of ``settings`` until the pipe closes;
    its figures go to the server through ``events``."""
    # Ctrl-C reaches the whole process group: the server decides when this process stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Builds take what CPU the API leaves: all of it when the API is idle, and the API
    # still answers at once while a build runs (DuckDB uses every core).
    os.nice(WORKER_NICENESS)
    from mdr_reporting.cli.admin import (
        lake_in_catalog,
        open_catalog,
        open_files,
        open_record_lake,
    )
    from mdr_reporting.cli.common import configure_logging
    from mdr_reporting.observability.metrics import forward_to
    from mdr_reporting.worker import Background, report_builder

    configure_logging(settings)
    sending = threading.Lock()

    def send(kind: str, args: tuple[Any, ...]) -> None:
        with sending, contextlib.suppress(OSError, ValueError):
            events.send((kind, args))  # the server may be gone: it no longer counts

    forward_to(send)
    files = open_files(settings)
    lake = None if lake_in_catalog(settings) else open_record_lake(settings)
    catalog = open_catalog(settings)
    try:
        builder = report_builder(settings, lake or open_record_lake(settings))
        with Background(settings, catalog, files, builder) as background:
            worker = background.worker
            while True:
                try:
                    wakes.recv_bytes()
                except (EOFError, OSError):
                    break  # the server is gone
                if worker is not None:
                    worker.wake()
        if worker is not None:
            send("handed_back", (worker.handed_back,))
    finally:
        catalog.close()
        events.close()
