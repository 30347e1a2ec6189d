"""Test doubles shipped in the package: a controllable clock and a builder that writes real files.

:class:`FakeBuilder` writes a small, deterministic report derived from the request
(so a test can compute the exact expected bytes with :meth:`FakeBuilder.render`),
and can be told to be slow, to fail its first attempts, or to block until cancelled.
``python -m mdr_reporting.worker.testing ...`` runs a worker with it in its own
process, for the kill -9 test.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.catalog.store import Catalog
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState, parse_v1
from mdr_reporting.files.local import LocalFileStore
from mdr_reporting.worker.builder import BuildCancelled, BuildResult
from mdr_reporting.worker.worker import Worker

__all__ = ["FakeBuilder", "ManualClock", "main", "make_request"]

_HEADER = ("id", "created_at", "direction", "cli", "cld", "message_body")


class ManualClock:
    """A clock that moves only when told to (thread-safe)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> None:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step


def make_request(catalog: Catalog, *, account_id: str = "acct-01", **body: object) -> RequestState:
    """Store a Pending request (v1 body fields as keywords), creating the account if needed."""
    now = catalog.clock()
    if catalog.get_account(account_id) is None:
        catalog.create_account(account_id, account_id=account_id)
    body.setdefault("start_time", (now - timedelta(days=2)).isoformat())
    body.setdefault("end_time", (now - timedelta(days=1)).isoformat())
    state = RequestState(
        id=str(uuid.uuid4()),
        account_id=account_id,
        accounts=(account_id,),
        spec=parse_v1(body, now),
        status=RequestStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    stored, _ = catalog.create_request(state)
    return stored


class FakeBuilder:
    """Writes ``rows`` rows derived from the request id, in the request's format.

    ``row_delay`` slows each row down; ``fail_attempts`` makes the first N builds of
    each request raise; ``block`` makes a build wait until it is cancelled.
    """

    def __init__(
        self,
        rows: int = 3,
        *,
        row_delay: float = 0.0,
        fail_attempts: int = 0,
        block: bool = False,
        error: str = "the lake is unreachable",
    ) -> None:
        self.rows = rows
        self.row_delay = row_delay
        self.fail_attempts = fail_attempts
        self.block = block
        self.error = error
        self.calls: Counter[str] = Counter()
        self.started = threading.Event()
        self._lock = threading.Lock()

    def render_rows(self, request: RequestState) -> list[tuple[str, ...]]:
        """The rows a build of ``request`` writes; quotes, commas and newlines on purpose."""
        return [
            (
                f"{request.id[:8]}-{n:04d}",
                (request.spec.start_time + timedelta(minutes=n)).isoformat(),
                "outbound",
                f"+1312555{n:04d}",
                f"+1773555{n:04d}",
                f'hello "{n}", world\nline two',
            )
            for n in range(self.rows)
        ]

    def render(self, request: RequestState) -> bytes:
        """The exact bytes of the file a build of ``request`` writes."""
        rows = self.render_rows(request)
        fmt = request.spec.format
        if fmt in ("csv", "csv.gz"):
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow(_HEADER)
            writer.writerows(rows)
            data = text.getvalue().encode()
        elif fmt == "jsonl.gz":
            data = b"".join(
                json.dumps(dict(zip(_HEADER, row, strict=True))).encode() + b"\n" for row in rows
            )
        else:
            raise ValueError(f"the fake builder does not write {fmt}")
        return gzip.compress(data, mtime=0) if fmt.endswith(".gz") else data

    def build(
        self,
        request: RequestState,
        out_path: Path,
        *,
        progress: Callable[[float], None],
        cancelled: Callable[[], bool],
    ) -> BuildResult:
        with self._lock:
            self.calls[request.id] += 1
            attempt = self.calls[request.id]
        self.started.set()
        if attempt <= self.fail_attempts:
            raise RuntimeError(self.error)
        out_path.write_bytes(b"")  # a partial file exists while building, as with a real engine
        while self.block:
            if cancelled():
                raise BuildCancelled
            time.sleep(0.01)
        for n in range(self.rows):
            if cancelled():
                raise BuildCancelled
            if self.row_delay:
                time.sleep(self.row_delay)
            progress((n + 1) / max(self.rows, 1))
        out_path.write_bytes(self.render(request))
        return BuildResult(record_count=self.rows)


def main(argv: list[str] | None = None) -> None:
    """A worker process with the fake builder, against a catalog and a report folder."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--files", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--row-delay", type=float, default=0.0)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--worker-id", default=None)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--max-attempts", type=int, default=3)
    args = parser.parse_args(argv)
    catalog = Catalog(args.catalog)
    queue = JobQueue(
        catalog,
        lease=timedelta(seconds=args.lease),
        max_attempts=args.max_attempts,
        retention=timedelta(days=30),
    )
    builder = FakeBuilder(args.rows, row_delay=args.row_delay)
    worker = Worker(
        queue,
        LocalFileStore(args.files),
        builder,
        poll_interval=0.05,
        progress_interval=0.0,
        work_dir=args.work_dir,
        worker_id=args.worker_id,
    )
    worker.run_forever()


if __name__ == "__main__":
    main()
