"""The hot reads of a SQLite catalog (key lookup, one request by id) on plain sqlite3.

Every authenticated call looks its key up, and a status read fetches one request row.
Through SQLAlchemy each of these costs a pool checkout, the statement's cache lookup,
its events and its result processing: a few hundred microseconds of CPU for a lookup
that SQLite itself answers in a few. Here the same SELECTs run on sqlite3 connections
kept in a small pool of their own, in autocommit (each statement reads one snapshot
and takes no lock), and the rows are converted exactly as the catalog's column types
convert them (UTC datetimes, booleans), so the callers see the same values.

Only for a catalog in a SQLite file; writes, and every other catalog, stay on
SQLAlchemy.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Table

from mdr_reporting.catalog.schema import UTCDateTime, accounts, api_keys, requests

__all__ = ["SqliteReads", "sqlite_file"]

IDLE_CONNECTIONS = 40  # as many as the API's thread pool has threads


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL; None for memory databases and URIs."""
    if not url.startswith("sqlite:///"):
        return None
    path, _, query = url.removeprefix("sqlite:///").partition("?")
    if not path or path == ":memory:" or query:
        return None
    return Path(path)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _converters(table: Table) -> list[tuple[str, Callable[[Any], Any] | None]]:
    out: list[tuple[str, Callable[[Any], Any] | None]] = []
    for column in table.columns:
        if isinstance(column.type, UTCDateTime):
            out.append((column.name, _utc))
        elif isinstance(column.type, Boolean):
            out.append((column.name, _bool))
        else:
            out.append((column.name, None))
    return out


def _select(table: Table, where: str) -> str:
    names = ", ".join(f'"{c.name}"' for c in table.columns)
    return f'SELECT {names} FROM "{table.name}" WHERE {where}'


_KEY_BY_HASH = _select(api_keys, '"key_hash" = ?')
_LIVE_REQUEST = _select(requests, '"id" = ? AND "deleted_at" IS NULL')
_MANAGES = (
    'WITH RECURSIVE "up"("id", "parent_id") AS ('
    f'SELECT "id", "parent_id" FROM "{accounts.name}" WHERE "id" = ? '
    f'UNION SELECT a."id", a."parent_id" FROM "{accounts.name}" a '
    'JOIN "up" ON a."id" = "up"."parent_id") '
    'SELECT 1 FROM "up" WHERE "id" = ? LIMIT 1'
)
_KEY_COLUMNS = _converters(api_keys)
_REQUEST_COLUMNS = _converters(requests)
_REQUEST_ACCOUNT = [name for name, _ in _REQUEST_COLUMNS].index("account_id")


def _mapping(
    columns: list[tuple[str, Callable[[Any], Any] | None]], row: tuple[Any, ...]
) -> dict[str, Any]:
    return {
        name: (value if convert is None else convert(value))
        for (name, convert), value in zip(columns, row, strict=True)
    }


class SqliteReads:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("PRAGMA query_only=ON")  # this pool never writes
        return connection

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self._open()
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        with self._lock:
            if self._closed or len(self._idle) >= IDLE_CONNECTIONS:
                connection.close()
            else:
                self._idle.append(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def key_by_hash(self, digest: str) -> dict[str, Any] | None:
        """The ``api_keys`` row of this hash, as SQLAlchemy would return it."""
        row = self.key_row(digest)
        return None if row is None else self.key_mapping(row)

    def key_row(self, digest: str) -> tuple[Any, ...] | None:
        """:meth:`key_by_hash` as sqlite3 returns the row (hashable, not yet converted)."""
        with self._connection() as db:
            row: tuple[Any, ...] | None = db.execute(_KEY_BY_HASH, (digest,)).fetchone()
        return row

    @staticmethod
    def key_mapping(row: tuple[Any, ...]) -> dict[str, Any]:
        """A row of :meth:`key_row` as SQLAlchemy would return it."""
        return _mapping(_KEY_COLUMNS, row)

    def visible_request(self, request_id: str, viewer: str | None) -> dict[str, Any] | None:
        """The live ``requests`` row of this id if ``viewer`` (None: anyone) manages its
        account (its own account or one below it)."""
        row = self.visible_request_row(request_id, viewer)
        return None if row is None else self.request_mapping(row)

    def visible_request_row(self, request_id: str, viewer: str | None) -> tuple[Any, ...] | None:
        """:meth:`visible_request` as sqlite3 returns the row: a tuple of plain values
        (hashable, equal for an unchanged row), not yet converted."""
        with self._connection() as db:
            row: tuple[Any, ...] | None = db.execute(_LIVE_REQUEST, (request_id,)).fetchone()
            if row is None:
                return None
            account = row[_REQUEST_ACCOUNT]
            if viewer is not None and account != viewer:
                manages = db.execute(_MANAGES, (account, viewer)).fetchone()
                if manages is None:
                    return None
        return row

    @staticmethod
    def request_mapping(row: tuple[Any, ...]) -> dict[str, Any]:
        """A row of :meth:`visible_request_row` as SQLAlchemy would return it."""
        return _mapping(_REQUEST_COLUMNS, row)
