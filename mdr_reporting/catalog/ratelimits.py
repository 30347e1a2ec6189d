"""Token buckets in the database, so every API process shares one limit per key.

A take is one ``UPDATE ... RETURNING`` that refills the bucket for the time passed,
takes a token when there is one and records whether it did, all in the database:
two processes never both spend the last token. A bucket's first take inserts it
full. Times are unix seconds of the catalog's clock; a clock that runs behind
another process's never drains a bucket (the refill is never negative).

On PostgreSQL the buckets are the catalog's ``rate_buckets`` table. With a catalog
in a SQLite file they are the same table in a file of their own beside it
(``<catalog>.buckets.db``): SQLite has one write lock per file, and every call takes
a token, so sharing the catalog's lock would queue each call behind the report
worker's writes. Every process of the deployment opens the same file, so the limit
stays shared; losing it loses only how full the buckets were.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable

from mdr_reporting.catalog.schema import rate_buckets
from mdr_reporting.catalog.sqlite_reads import sqlite_file
from mdr_reporting.catalog.store import Catalog, make_engine, use_wal
from mdr_reporting.owner_only import private_file

__all__ = ["Allowance", "RateLimiter", "buckets_file"]


@dataclass(frozen=True)
class Allowance:
    """The answer of one take, with what the RateLimit-* headers say."""

    allowed: bool
    limit: int  # the burst: tokens of a full bucket
    remaining: int  # whole tokens left after this take
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until the next token (0 when allowed)


@dataclass
class _Take:
    bucket: str
    rate: float
    burst: int
    now: float


class RateLimiter:
    """Takes from the catalog's buckets; concurrent takes of one process share a commit.

    Threads of one process do not each open a write transaction (on SQLite they would
    queue in its busy handler, which sleeps): a take joins a queue, and whichever thread
    holds the writer runs every queued take, in order, each its own ``UPDATE ...
    RETURNING``, in one transaction. Every take still refills and spends in the
    database, so buckets stay exact across processes.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.engine = catalog.engine
        self._sqlite: _SqliteBuckets | None = None
        database = sqlite_file(catalog.url)
        if database is not None:  # the buckets' own file, on plain sqlite3
            self._sqlite = _SqliteBuckets(buckets_file(database))
            catalog.on_close.append(self._sqlite.close)
        elif self.engine.dialect.name == "sqlite":  # a memory catalog: its own table
            # A bucket need not survive a power cut: on its own connections, SQLite's WAL
            # commits without an fsync (still atomic, still shared by every process).
            self.engine = make_engine(catalog.url)
            sa.event.listen(self.engine, "connect", _no_fsync_on_commit)
            catalog.on_close.append(self.engine.dispose)
        self._queue: list[_Take] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()
        self._done: dict[int, Allowance | BaseException] = {}
        # take_soon's takes of this turn, by event loop (each loop runs its own)
        self._turns: dict[asyncio.AbstractEventLoop, list[tuple[_Take, asyncio.Future[Any]]]] = {}

    def take(self, bucket: str, *, rate: float, burst: int) -> Allowance:
        """Spend one token of ``bucket`` (``rate`` tokens a second, at most ``burst``)."""
        job = _Take(bucket, rate, burst, self.catalog.clock().timestamp())
        with self._queue_lock:
            self._queue.append(job)
        with self._writer:
            answer = self._done.pop(id(job), None)
            if answer is None:  # not run by an earlier writer: run the queue now
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                results = self._run(batch)
                for item, result in zip(batch, results, strict=True):
                    self._done[id(item)] = result
                answer = self._done.pop(id(job))
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def take_now(self, bucket: str, *, rate: float, burst: int) -> Allowance | None:
        """:meth:`take` if it can be done without waiting (it may run on an event loop),
        else None: the buckets are not a SQLite file, another thread's batch is running
        or queued, or another process holds the buckets' write lock."""
        if self._sqlite is None or not self._writer.acquire(blocking=False):
            return None
        try:
            with self._queue_lock:
                if self._queue:
                    return None  # threads are waiting their turn: keep the order
            job = _Take(bucket, rate, burst, self.catalog.clock().timestamp())
            pairs = self._sqlite.take([job], wait=False)
            return None if pairs is None else _allowance(job, *pairs[0])
        finally:
            self._writer.release()

    async def take_soon(self, bucket: str, *, rate: float, burst: int) -> Allowance | None:
        """:meth:`take_now` for a caller on an event loop, in a group commit: the takes of
        every task that runs in this turn of the loop are run, in the order they were
        asked for, each its own ``UPDATE ... RETURNING``, in one transaction once those
        tasks have had their turn. None (take it in a thread) where take_now says None."""
        if self._sqlite is None:
            return None
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Allowance | None] = loop.create_future()
        job = _Take(bucket, rate, burst, self.catalog.clock().timestamp())
        turn = self._turns.get(loop)
        if turn is None:  # the first of this turn: run them all after the others
            turn = self._turns[loop] = []
            loop.call_soon(self._run_turn, loop)
        turn.append((job, answer))
        return await answer

    def _run_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        turn = self._turns.pop(loop)
        pairs = None
        if self._sqlite is not None and self._writer.acquire(blocking=False):
            try:
                with self._queue_lock:
                    waiting = bool(self._queue)  # threads are waiting their turn: keep the order
                if not waiting:
                    pairs = self._sqlite.take([job for job, _ in turn], wait=False)
            except Exception as exc:  # nothing of this batch was committed
                for _, answer in turn:
                    if not answer.done():
                        answer.set_exception(exc)
                return
            finally:
                self._writer.release()
        for i, (job, answer) in enumerate(turn):
            if not answer.done():  # (a cancelled caller)
                answer.set_result(None if pairs is None else _allowance(job, *pairs[i]))

    def _run(self, batch: list[_Take]) -> list[Allowance | BaseException]:
        if self._sqlite is not None:
            try:
                pairs = self._sqlite.take(batch)
            except Exception as exc:  # nothing of this batch was committed
                return [exc] * len(batch)
            return [_allowance(item, *pair) for item, pair in zip(batch, pairs, strict=True)]
        try:
            with self.engine.begin() as db:
                rows = [self._take_row(db, item) for item in batch]
        except Exception as exc:  # nothing of this batch was committed
            return [exc] * len(batch)
        return [
            _allowance(item, row.tokens, row.granted) for item, row in zip(batch, rows, strict=True)
        ]

    @staticmethod
    def _take_row(db: Connection, item: _Take) -> Any:
        params = {"b_bucket": item.bucket, "now": item.now, "rate": item.rate, "cap": item.burst}
        row = db.execute(_TAKE, params).first()
        if row is None:
            insert: Any = (
                postgresql_insert(rate_buckets)
                if db.dialect.name == "postgresql"
                else sqlite_insert(rate_buckets)
            )
            made = db.execute(
                insert.values(
                    bucket=item.bucket, tokens=item.burst - 1.0, stamp=item.now, granted=True
                )
                .on_conflict_do_nothing(index_elements=[rate_buckets.c.bucket])
                .returning(rate_buckets.c.tokens, rate_buckets.c.granted)
            ).first()
            # another process inserted it first: take from the bucket it made
            row = made or db.execute(_TAKE, params).one()
        return row


def _allowance(item: _Take, tokens_left: Any, took: Any) -> Allowance:
    tokens, granted = float(tokens_left), bool(took)
    rate, burst = item.rate, item.burst
    return Allowance(
        allowed=granted,
        limit=burst,
        remaining=max(0, math.floor(tokens)),
        reset=max(0, math.ceil((burst - tokens) / rate)),
        retry_after=0 if granted else max(1, math.ceil((1.0 - tokens) / rate)),
    )


def _no_fsync_on_commit(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _take_statement() -> sa.Update:
    """Refill for the time since ``stamp``, then take a token if a whole one is there.

    Built once, with bind parameters: ``b_bucket``, ``now``, ``rate`` and ``cap`` (the burst).
    """
    c = rate_buckets.c
    now = sa.bindparam("now", type_=sa.Float)
    rate = sa.bindparam("rate", type_=sa.Float)
    cap = sa.bindparam("cap", type_=sa.Float)
    later = now > c.stamp
    elapsed = sa.case((later, now - c.stamp), else_=0.0)
    filled = c.tokens + elapsed * rate
    capped = sa.case((filled > cap, cap), else_=filled)
    return (
        rate_buckets.update()
        .where(c.bucket == sa.bindparam("b_bucket"))
        .values(
            tokens=sa.case((capped >= 1.0, capped - 1.0), else_=capped),
            granted=capped >= 1.0,
            stamp=sa.case((later, now), else_=c.stamp),
        )
        .returning(c.tokens, c.granted)
    )


_TAKE = _take_statement()


def buckets_file(catalog_file: Path) -> Path:
    """Where the buckets of a catalog in ``catalog_file`` (SQLite) live."""
    return catalog_file.with_name(f"{catalog_file.stem}.buckets{catalog_file.suffix or '.db'}")


class _SqliteBuckets:
    """The takes of a SQLite-file deployment, on one plain sqlite3 connection to the
    buckets' file (created with the table on first use).

    The statements are the ones above, compiled once for SQLite; only SQLAlchemy's
    per-statement work is gone. One connection is enough: the limiter's writer lock
    lets one batch run at a time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._waiting = True  # the connection's busy timeout: 30 s, or 0 for take_now

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            private_file(self.path)  # SQLite gives its -wal and -shm files the same mode
            connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA busy_timeout=30000")
            use_wal(connection)
            # A bucket need not survive a power cut: WAL commits without an fsync (still
            # atomic, still shared by every process).
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SQLITE_CREATE)
            self._connection = connection
        return self._connection

    @overload
    def take(self, batch: list[_Take]) -> list[tuple[float, bool]]: ...
    @overload
    def take(self, batch: list[_Take], *, wait: bool) -> list[tuple[float, bool]] | None: ...

    def take(self, batch: list[_Take], *, wait: bool = True) -> list[tuple[float, bool]] | None:
        """Run the batch in one transaction; without ``wait``, None instead of waiting for
        another process's write lock."""
        db = self._db()
        if wait != self._waiting:
            db.execute(f"PRAGMA busy_timeout={30000 if wait else 0}")
            self._waiting = wait
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            if wait:
                raise
            return None  # locked by another process
        try:
            out = []
            for item in batch:
                params = {
                    **_SQLITE_TAKE_DEFAULTS,
                    "b_bucket": item.bucket,
                    "now": item.now,
                    "rate": item.rate,
                    "cap": float(item.burst),
                }
                values = [params[name] for name in _SQLITE_TAKE_ORDER]
                row = db.execute(_SQLITE_TAKE_SQL, values).fetchone()
                if row is None:
                    row = db.execute(
                        _SQLITE_INSERT, (item.bucket, item.burst - 1.0, item.now)
                    ).fetchone()
                    # another process inserted it first: take from the bucket it made
                    row = row or db.execute(_SQLITE_TAKE_SQL, values).fetchone()
                out.append((float(row[0]), bool(row[1])))
            db.execute("COMMIT")
        except sqlite3.OperationalError:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if wait:
                raise
            return None  # e.g. the commit found the file busy: nothing was taken
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return out

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_SQLITE_COMPILED = _TAKE.compile(dialect=sqlite_dialect.dialect())
_SQLITE_TAKE_SQL = str(_SQLITE_COMPILED)
_SQLITE_TAKE_ORDER = tuple(_SQLITE_COMPILED.positiontup or ())
_SQLITE_TAKE_DEFAULTS = _SQLITE_COMPILED.construct_params(  # the statement's literals
    {"b_bucket": "", "now": 0.0, "rate": 0.0, "cap": 0.0}
)
_SQLITE_CREATE = str(
    CreateTable(rate_buckets, if_not_exists=True).compile(dialect=sqlite_dialect.dialect())
)
_SQLITE_INSERT = (
    "INSERT INTO rate_buckets (bucket, tokens, stamp, granted) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (bucket) DO NOTHING RETURNING tokens, granted"
)
