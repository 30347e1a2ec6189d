"""Wake-ups for idle workers: PostgreSQL ``NOTIFY`` when a request becomes claimable.

A ``NOTIFY`` issued inside the transaction that inserts (or hands back) a request is
delivered when that transaction commits, so a listener never hears of a request it
cannot claim yet. Notifications are only a hint: workers still poll, which finds
expired leases, retry delays and anything sent while a listener was reconnecting. A
missed notification costs one poll interval, never a request.

The channel is named after the catalog's schema, so two deployments (or two test
schemas) in one database do not wake each other. SQLite has no notifications: there
a worker polls, or is woken in-process by the API it shares a process with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["CHANNEL_PREFIX", "Listener", "notify_claimable"]

log = logging.getLogger("mdr.notify")

CHANNEL_PREFIX = "mdr_requests."
# One expression on both sides: the notifier and the listener agree on the name.
_CHANNEL_SQL = f"'{CHANNEL_PREFIX}' || left(current_schema(), 48)"


def notify_claimable(db: Connection, request_id: str) -> None:
    """Tell listening workers, at commit, that ``request_id`` can be claimed (PostgreSQL only)."""
    if db.dialect.name == "postgresql":
        db.execute(sa.text(f"SELECT pg_notify({_CHANNEL_SQL}, :id)"), {"id": request_id})


def _libpq_url(catalog_url: str) -> str:
    """The catalog's SQLAlchemy URL as a plain libpq URI, password kept, for psycopg."""
    url = sa.engine.make_url(catalog_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Listener:
    """A thread holding one autocommit connection that LISTENs and calls ``wake`` per message.

    It reconnects after a lost connection and wakes once on every (re)connect, since
    requests may have been created while it was not listening.
    """

    def __init__(
        self,
        catalog_url: str,
        wake: Callable[[], None],
        *,
        reconnect_after: float = 2.0,
        check_stop_every: float = 0.5,
    ) -> None:
        self.dsn = _libpq_url(catalog_url)
        self.wake = wake
        self.reconnect_after = reconnect_after
        self.check_stop_every = check_stop_every
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mdr-listen", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        import psycopg
        from psycopg import sql

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                    row = conn.execute(f"SELECT {_CHANNEL_SQL}").fetchone()
                    assert row is not None
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(row[0])))
                    self.listening.set()
                    self.wake()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=self.check_stop_every):
                            self.wake()
            except psycopg.Error as exc:
                log.warning("listening for new requests failed (%s); polling meanwhile", exc)
            self.listening.clear()
            self._stop.wait(self.reconnect_after)
