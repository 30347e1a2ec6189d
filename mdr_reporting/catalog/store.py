"""The catalog: one class over SQLAlchemy Core, the same code on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mdr_reporting.catalog.notify import notify_claimable
from mdr_reporting.catalog.schema import accounts, api_keys, requests
from mdr_reporting.catalog.sqlite_reads import SqliteReads, sqlite_file
from mdr_reporting.domain.enums import Direction, RecordType, RequestStatus
from mdr_reporting.domain.errors import Conflict, InvalidInput, NotFound, RateLimited
from mdr_reporting.domain.filters import parse_filters
from mdr_reporting.domain.requests import ReportRequest, RequestState

__all__ = ["Account", "ApiKey", "Catalog", "KeyScope", "NewKey", "hash_key"]

IDEMPOTENCY_WINDOW = timedelta(hours=24)
PENDING_CAP_RETRY_SECONDS = 30  # Retry-After of a create refused by the Pending cap
LAST_USED_RESOLUTION = timedelta(seconds=60)
SQLITE_POOL_SIZE = 40
READ_ONLY = "mdr_read_only"  # execution option of connections that only read
KEY_PREFIX = "mdr_"


class KeyScope(StrEnum):
    REPORTS = "reports"
    INGEST = "ingest"
    ADMIN = "admin"


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    parent_id: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "parent_id": self.parent_id}


@dataclass(frozen=True)
class ApiKey:
    id: str
    account_id: str
    scope: KeyScope
    prefix: str
    revoked: bool
    created_at: datetime
    last_used_at: datetime | None

    def allows(self, scope: KeyScope) -> bool:
        return self.scope in (scope, KeyScope.ADMIN)


@dataclass(frozen=True)
class NewKey:
    """A key just made: the only moment its secret exists outside the client."""

    key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    """Keys are 256 random bits, so one SHA-256 is enough to make the stored value useless."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def use_wal(connection: Any, *, timeout: float = 30.0) -> None:
    """Put a SQLite file in WAL mode (a setting kept in the file), waiting for other
    connections that open the same file at the same moment.

    Switching a file to WAL needs its exclusive lock, and SQLite answers "database is
    locked" at once, without its busy handler, when another connection holds a lock
    then (two processes or threads opening a new file together): retry until ``timeout``.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            cursor = connection.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # As many pooled connections as the API's thread pool has threads (anyio's 40): a
        # connection opened past the pool is closed on return, and every open runs the
        # PRAGMAs below again, which under load cost more than the reads themselves.
        database = sa.engine.make_url(url).database
        in_memory = database in (None, "", ":memory:")  # one connection: no pool to size
        pool: dict[str, Any] = (
            {} if in_memory else {"pool_size": SQLITE_POOL_SIZE, "max_overflow": 10}
        )
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
            use_wal(dbapi_connection)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
            # A read-only transaction (READ_ONLY) takes no lock: in WAL mode it reads its
            # snapshot while a writer commits, instead of queueing behind every writer.
            if connection.get_execution_options().get(READ_ONLY):
                connection.exec_driver_sql("BEGIN")
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # an unreachable server fails start-up in seconds instead of hanging on libpq's default
    connect_args = {} if "connect_timeout=" in url else {"connect_timeout": 10}
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


CONVERTED_ROWS = 1024  # request rows whose conversion a SQLite catalog keeps (see _states)


class Catalog:
    """Accounts, keys and requests. Every method is one short transaction."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] = _utcnow) -> None:
        if url.startswith("sqlite:///"):
            from pathlib import Path

            from mdr_reporting.owner_only import private_dir, private_file

            database = Path(url.removeprefix("sqlite:///").partition("?")[0])
            private_dir(database.parent)
            private_file(database)  # SQLite gives its -wal and -shm files the same mode
        self.url = url
        self.engine = make_engine(url)
        # The same pool; its transactions only read (on SQLite: no write lock taken).
        self.reader = self.engine.execution_options(**{READ_ONLY: True})
        self.clock = clock
        self.on_close: list[Callable[[], None]] = []  # e.g. engines of helpers to dispose
        # The hot reads (key lookup, a request by id) on plain sqlite3 for a SQLite file.
        read_file = sqlite_file(url)
        self.fast_reads = SqliteReads(read_file) if read_file is not None else None
        if self.fast_reads is not None:
            self.on_close.append(self.fast_reads.close)
        # Rows of requests read by id, as fetched, and the state each converts to: a
        # client polling a request reads the same row again and again until it changes.
        self._states: dict[tuple[Any, ...], RequestState] = {}
        self._keys: dict[tuple[Any, ...], ApiKey] = {}  # the same for live keys

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        config = Config()
        config.set_main_option(
            "script_location", str(resources.files("mdr_reporting.catalog") / "migrations")
        )
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        for hook in self.on_close:
            hook()
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    # -- accounts -------------------------------------------------------------------------

    def create_account(
        self, name: str, *, account_id: str | None = None, parent_id: str | None = None
    ) -> Account:
        if not name or len(name) > 255:
            raise InvalidInput("account name must be 1 to 255 characters", pointer="/name")
        account_id = account_id or str(uuid.uuid4())
        if not 1 <= len(account_id) <= 64:
            raise InvalidInput("account id must be 1 to 64 characters", pointer="/id")
        account = Account(account_id, name, parent_id, self.clock())
        with self.transaction() as db:
            if db.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id)).first():
                raise Conflict(f"account {account_id} already exists", pointer="/id")
            if (
                parent_id is not None
                and not db.execute(
                    sa.select(accounts.c.id).where(accounts.c.id == parent_id)
                ).first()
            ):
                raise NotFound(f"parent account {parent_id} does not exist", pointer="/parent_id")
            db.execute(accounts.insert().values(**account.__dict__))
        return account

    def get_account(self, account_id: str) -> Account | None:
        with self.reader.connect() as db:
            row = db.execute(accounts.select().where(accounts.c.id == account_id)).first()
        return Account(**row._mapping) if row else None

    def list_accounts(self) -> list[Account]:
        with self.reader.connect() as db:
            rows = db.execute(accounts.select().order_by(accounts.c.created_at, accounts.c.id))
            return [Account(**row._mapping) for row in rows]

    def managed_accounts(self, account_id: str) -> list[str]:
        """``account_id`` and every descendant through ``parent_id``."""
        tree = (
            sa.select(accounts.c.id).where(accounts.c.id == account_id).cte("tree", recursive=True)
        )
        tree = tree.union(sa.select(accounts.c.id).where(accounts.c.parent_id == tree.c.id))
        with self.reader.connect() as db:
            return sorted(db.execute(sa.select(tree.c.id)).scalars())

    def existing_accounts(self, ids: Collection[str]) -> set[str]:
        if not ids:
            return set()
        with self.reader.connect() as db:
            rows = db.execute(sa.select(accounts.c.id).where(accounts.c.id.in_(list(ids))))
            return set(rows.scalars())

    # -- keys -----------------------------------------------------------------------------

    def create_key(self, account_id: str, scope: KeyScope | str) -> NewKey:
        try:
            scope = KeyScope(scope)
        except ValueError:
            raise InvalidInput(
                f"scope must be one of {', '.join(s.value for s in KeyScope)}", pointer="/scope"
            ) from None
        if self.get_account(account_id) is None:
            raise NotFound(f"account {account_id} does not exist", pointer="/account_id")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            account_id=account_id,
            scope=scope,
            prefix=secret[:10],
            revoked=False,
            created_at=self.clock(),
            last_used_at=None,
        )
        with self.transaction() as db:
            db.execute(
                api_keys.insert().values(
                    **{**key.__dict__, "scope": scope.value}, key_hash=hash_key(secret)
                )
            )
        return NewKey(key, secret)

    def revoke_key(self, key_id: str) -> ApiKey:
        with self.transaction() as db:
            done = db.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked=True))
            if done.rowcount == 0:
                raise NotFound(f"key {key_id} does not exist")
            row = db.execute(api_keys.select().where(api_keys.c.id == key_id)).one()
        return self._key(row._mapping)

    def list_keys(self, account_id: str) -> list[ApiKey]:
        with self.reader.connect() as db:
            rows = db.execute(
                api_keys.select()
                .where(api_keys.c.account_id == account_id)
                .order_by(api_keys.c.created_at)
            )
            return [self._key(row._mapping) for row in rows]

    @property
    def reads_never_wait(self) -> bool:
        """Whether :meth:`find_key` and :meth:`visible_request` answer in microseconds and
        never wait for a lock (a SQLite file in WAL mode: a reader never waits for a
        writer), so that the API may call them on its event loop."""
        return self.fast_reads is not None

    def authenticate(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is, or None; records when it was last used."""
        key = self.find_key(secret)
        return None if key is None else self.touch_key(key)

    def find_key(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is, or None (reads only)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
            return None
        digest = hash_key(secret)
        row: Any
        raw: tuple[Any, ...] | None = None
        if self.fast_reads is not None:
            raw = self.fast_reads.key_row(digest)  # read every time: a revocation counts at once
            if raw is None:
                return None
            cached = self._keys.get(raw)
            if cached is not None:  # this row, unchanged, was converted before
                return cached
            row = self.fast_reads.key_mapping(raw)
        else:
            with self.reader.connect() as db:
                found = db.execute(api_keys.select().where(api_keys.c.key_hash == digest)).first()
            row = None if found is None else found._mapping
        if row is None or row["revoked"]:
            return None
        key = self._key(row)
        if raw is not None:
            if len(self._keys) >= CONVERTED_ROWS:
                self._keys.clear()
            self._keys[raw] = key
        return key

    def key_needs_touch(self, key: ApiKey) -> bool:
        """Whether :meth:`touch_key` would write (``last_used_at`` is older than a minute)."""
        return key.last_used_at is None or self.clock() - key.last_used_at > LAST_USED_RESOLUTION

    def touch_key(self, key: ApiKey) -> ApiKey:
        """Record that ``key`` was used now, at most once a minute (a write)."""
        now = self.clock()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            with self.transaction() as db:
                db.execute(
                    api_keys.update().where(api_keys.c.id == key.id).values(last_used_at=now)
                )
            key = dataclasses.replace(key, last_used_at=now)
        return key

    @staticmethod
    def _key(row: Any) -> ApiKey:
        return ApiKey(
            id=row["id"],
            account_id=row["account_id"],
            scope=KeyScope(row["scope"]),
            prefix=row["prefix"],
            revoked=bool(row["revoked"]),
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
        )

    # -- requests -------------------------------------------------------------------------

    def create_request(
        self,
        state: RequestState,
        *,
        idempotency_key: str | None = None,
        idempotency_hash: str | None = None,
        max_pending: int | None = None,
    ) -> tuple[RequestState, bool]:
        """Store a new request; with an idempotency key seen in the last 24 hours, the first one.

        Returns the request and whether it was created now. The same key with a
        different body is a Conflict. With ``max_pending``, an account that already
        has that many Pending requests is refused (RateLimited) instead.
        """
        for _ in range(3):
            try:
                return self._create_request(state, idempotency_key, idempotency_hash, max_pending)
            except IntegrityError:
                continue  # a concurrent create with the same key won: read it back
        raise Conflict("the Idempotency-Key is being used by a concurrent request")

    def _create_request(
        self,
        state: RequestState,
        key: str | None,
        body_hash: str | None,
        max_pending: int | None,
    ) -> tuple[RequestState, bool]:
        with self.transaction() as db:
            if max_pending is not None and db.dialect.name == "postgresql":
                # Creates of one account queue here, so the count below cannot be raced.
                db.execute(
                    sa.select(accounts.c.id)
                    .where(accounts.c.id == state.account_id)
                    .with_for_update()
                )
            if key is not None:
                row = db.execute(
                    requests.select().where(
                        requests.c.account_id == state.account_id,
                        requests.c.idempotency_key == key,
                    )
                ).first()
                if row is not None and row.created_at > self.clock() - IDEMPOTENCY_WINDOW:
                    if row.idempotency_hash != body_hash:
                        raise Conflict(
                            "this Idempotency-Key was used with a different request body"
                        )
                    if row.deleted_at is not None:
                        raise Conflict("this Idempotency-Key belongs to a deleted request")
                    return self._state(row._mapping), False
                if row is not None:  # older than the window: the key is free again
                    db.execute(
                        requests.update()
                        .where(requests.c.id == row.id)
                        .values(idempotency_key=None)
                    )
            if max_pending is not None:
                self._check_pending_cap(db, state.account_id, max_pending)
            db.execute(
                requests.insert().values(
                    **self._row(state), idempotency_key=key, idempotency_hash=body_hash
                )
            )
            notify_claimable(db, state.id)  # delivered at commit: an idle worker starts now
        return state, True

    @staticmethod
    def _check_pending_cap(db: Connection, account_id: str, cap: int) -> None:
        pending = db.execute(
            sa.select(sa.func.count())
            .select_from(requests)
            .where(
                requests.c.account_id == account_id,
                requests.c.status == int(RequestStatus.PENDING),
                requests.c.deleted_at.is_(None),
            )
        ).scalar_one()
        if pending >= cap:
            raise RateLimited(
                f"this account already has {pending} Pending requests, the most it may have "
                f"queued at once ({cap}): wait for some to complete, or DELETE some",
                retry_after=PENDING_CAP_RETRY_SECONDS,
            )

    def get_request(
        self, request_id: str, account_ids: Collection[str] | None = None
    ) -> RequestState | None:
        """A live request by id; None when it does not exist or belongs to another account."""
        query = requests.select().where(
            requests.c.id == request_id, requests.c.deleted_at.is_(None)
        )
        if account_ids is not None:
            query = query.where(requests.c.account_id.in_(list(account_ids)))
        with self.reader.connect() as db:
            row = db.execute(query).first()
        return self._state(row._mapping) if row else None

    def visible_request(self, request_id: str, viewer: str | None) -> RequestState | None:
        """A live request by id as ``viewer``'s account sees it (None: every account, as an
        admin key does): its own requests and those of the accounts it manages. One
        lookup by primary key; the account tree is walked only for another account's row."""
        if self.fast_reads is not None:
            row = self.fast_reads.visible_request_row(request_id, viewer)
            if row is None:
                return None
            state = self._states.get(row)
            if state is None:  # a row not seen as it is now: convert it (and remember)
                state = self._state(self.fast_reads.request_mapping(row))
                if len(self._states) >= CONVERTED_ROWS:
                    self._states.clear()
                self._states[row] = state
            return state
        query = requests.select().where(
            requests.c.id == request_id, requests.c.deleted_at.is_(None)
        )
        with self.reader.connect() as db:
            row = db.execute(query).first()
            if row is None:
                return None
            if viewer is not None and row.account_id != viewer:
                up = (
                    sa.select(accounts.c.id, accounts.c.parent_id)
                    .where(accounts.c.id == row.account_id)
                    .cte("up", recursive=True)
                )
                up = up.union(
                    sa.select(accounts.c.id, accounts.c.parent_id).where(
                        accounts.c.id == up.c.parent_id
                    )
                )
                if db.execute(sa.select(up.c.id).where(up.c.id == viewer)).first() is None:
                    return None
        return self._state(row._mapping)

    def list_requests(
        self, account_ids: Collection[str] | None, *, offset: int, limit: int
    ) -> tuple[list[RequestState], int]:
        """One page of live requests, newest first, and the total count."""
        where = [requests.c.deleted_at.is_(None)]
        if account_ids is not None:
            where.append(requests.c.account_id.in_(list(account_ids)))
        with self.reader.connect() as db:
            total = db.execute(sa.select(sa.func.count()).select_from(requests).where(*where))
            rows = db.execute(
                requests.select()
                .where(*where)
                .order_by(requests.c.created_at.desc(), requests.c.id.desc())
                .offset(offset)
                .limit(limit)
            )
            return [self._state(row._mapping) for row in rows], int(total.scalar_one())

    def delete_request(
        self, request_id: str, account_ids: Collection[str] | None = None
    ) -> RequestState | None:
        """Mark a request deleted (a build in progress sees it and stops); None if not found."""
        now = self.clock()
        with self.transaction() as db:
            query = requests.select().where(
                requests.c.id == request_id, requests.c.deleted_at.is_(None)
            )
            if account_ids is not None:
                query = query.where(requests.c.account_id.in_(list(account_ids)))
            row = db.execute(query).first()
            if row is None:
                return None
            db.execute(
                requests.update()
                .where(requests.c.id == request_id)
                .values(deleted_at=now, updated_at=now, lease_owner=None)
            )
        return self._state(row._mapping)

    # -- row mapping ----------------------------------------------------------------------

    @staticmethod
    def _row(state: RequestState) -> dict[str, Any]:
        spec = state.spec
        return {
            "id": state.id,
            "account_id": state.account_id,
            "accounts": json.dumps(list(state.accounts)),
            "start_time": spec.start_time,
            "end_time": spec.end_time,
            "timezone": spec.timezone,
            "directions": json.dumps([int(d) for d in spec.directions]),
            "record_types": json.dumps([int(r) for r in spec.record_types]),
            "connections": json.dumps(list(spec.connections)),
            "profiles": json.dumps(list(spec.profiles)),
            "report_name": spec.report_name,
            "filters": spec.filters_json(),
            "include_message_body": spec.include_message_body,
            "format": spec.format,
            "webhook_url": spec.webhook_url,
            "managed_accounts": json.dumps(list(spec.managed_accounts)),
            "select_all_managed_accounts": spec.select_all_managed_accounts,
            "status": int(state.status),
            "warnings": json.dumps(list(state.warnings)),
            "record_count": state.record_count,
            "size_bytes": state.size_bytes,
            "file_key": state.file_key,
            "completed_at": state.completed_at,
            "expires_at": state.expires_at,
            "progress": state.progress,
            "error": state.error,
            "engine": state.engine,
            "surface": state.surface,
            "started_at": state.started_at,
            "attempts": state.attempts,
            "created_at": state.created_at,
            "updated_at": state.updated_at,
        }

    @staticmethod
    def _state(row: Any) -> RequestState:
        filters, problems = parse_filters(json.loads(row["filters"]))
        assert not problems, problems
        spec = ReportRequest(
            start_time=row["start_time"],
            end_time=row["end_time"],
            timezone=row["timezone"],
            directions=tuple(Direction(d) for d in json.loads(row["directions"])),
            record_types=tuple(RecordType(r) for r in json.loads(row["record_types"])),
            connections=tuple(json.loads(row["connections"])),
            profiles=tuple(json.loads(row["profiles"])),
            report_name=row["report_name"],
            filters=filters,
            include_message_body=bool(row["include_message_body"]),
            format=row["format"],
            webhook_url=row["webhook_url"],
            managed_accounts=tuple(json.loads(row["managed_accounts"])),
            select_all_managed_accounts=bool(row["select_all_managed_accounts"]),
        )
        return RequestState(
            id=row["id"],
            account_id=row["account_id"],
            accounts=tuple(json.loads(row["accounts"])),
            spec=spec,
            status=RequestStatus(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            completed_at=row["completed_at"],
            expires_at=row["expires_at"],
            record_count=row["record_count"],
            size_bytes=row["size_bytes"],
            progress=float(row["progress"]),
            error=row["error"],
            warnings=tuple(json.loads(row["warnings"])),
            attempts=int(row["attempts"]),
            file_key=row["file_key"],
            engine=row["engine"],
            surface=row["surface"] or "v1",
            started_at=row["started_at"],
            lease_until=row["lease_expires_at"] if row["lease_owner"] else None,
        )
