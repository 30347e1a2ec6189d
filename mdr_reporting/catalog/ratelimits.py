"""Token buckets kept in the catalog, so every API process shares one limit per key.

A take is one ``UPDATE ... RETURNING`` that refills the bucket for the time passed,
takes a token when there is one and records whether it did, all in the database:
two processes never both spend the last token. A bucket's first take inserts it
full. Times are unix seconds of the catalog's clock; a clock that runs behind
another process's never drains a bucket (the refill is never negative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mdr_reporting.catalog.schema import rate_buckets
from mdr_reporting.catalog.store import Catalog, make_engine

__all__ = ["Allowance", "RateLimiter"]


@dataclass(frozen=True)
class Allowance:
    """The answer of one take, with what the RateLimit-* headers say."""

    allowed: bool
    limit: int  # the burst: tokens of a full bucket
    remaining: int  # whole tokens left after this take
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until the next token (0 when allowed)


class RateLimiter:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.engine = catalog.engine
        if self.engine.dialect.name == "sqlite":
            # A bucket need not survive a power cut: on its own connections, SQLite's WAL
            # commits without an fsync (still atomic, still shared by every process).
            self.engine = make_engine(catalog.url)
            sa.event.listen(self.engine, "connect", _no_fsync_on_commit)
            catalog.on_close.append(self.engine.dispose)

    def take(self, bucket: str, *, rate: float, burst: int) -> Allowance:
        """Spend one token of ``bucket`` (``rate`` tokens a second, at most ``burst``)."""
        now = self.catalog.clock().timestamp()
        with self.engine.begin() as db:
            row = db.execute(_take(bucket, now, rate, burst)).first()
            if row is None:
                insert: Any = (
                    postgresql_insert(rate_buckets)
                    if db.dialect.name == "postgresql"
                    else sqlite_insert(rate_buckets)
                )
                made = db.execute(
                    insert.values(bucket=bucket, tokens=burst - 1.0, stamp=now, granted=True)
                    .on_conflict_do_nothing(index_elements=[rate_buckets.c.bucket])
                    .returning(rate_buckets.c.tokens, rate_buckets.c.granted)
                ).first()
                # another process inserted it first: take from the bucket it made
                row = made or db.execute(_take(bucket, now, rate, burst)).one()
        tokens, granted = float(row.tokens), bool(row.granted)
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


def _take(bucket: str, now: float, rate: float, burst: int) -> sa.Update:
    """Refill for the time since ``stamp``, then take a token if a whole one is there."""
    c = rate_buckets.c
    later = sa.literal(now, sa.Float) > c.stamp
    elapsed = sa.case((later, sa.literal(now, sa.Float) - c.stamp), else_=0.0)
    filled = c.tokens + elapsed * sa.literal(rate, sa.Float)
    capped = sa.case((filled > float(burst), float(burst)), else_=filled)
    return (
        rate_buckets.update()
        .where(c.bucket == bucket)
        .values(
            tokens=sa.case((capped >= 1.0, capped - 1.0), else_=capped),
            granted=capped >= 1.0,
            stamp=sa.case((later, sa.literal(now, sa.Float)), else_=c.stamp),
        )
        .returning(c.tokens, c.granted)
    )
