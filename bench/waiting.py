"""What the status-while-waiting fields cost a GET: ``queue_positions`` over a deep queue.

    .venv/bin/python bench/waiting.py [--catalog sqlite|postgresql://...] [--pending 20000]
        [--accounts 50] [--samples 200]

Fills a fresh catalog (a temporary SQLite file, or a new schema of the PostgreSQL
database given, dropped at the end) with ``--pending`` Pending requests spread over
``--accounts`` accounts, a few of them building, then times the position of one
request (what GET of a queued request adds: two indexed queries) and of a page of 100
Pending requests (what a list adds). Prints the medians and p90s in milliseconds.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.schema import requests
from mdr_reporting.catalog.store import make_engine
from mdr_reporting.catalog.waiting import queue_positions
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState, parse_v1


def fill(catalog: Catalog, pending: int, accounts: int) -> list[RequestState]:
    now = datetime.now(UTC)
    spec = parse_v1({"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-02T00:00:00Z"}, now)
    names = [f"acct-{i:03d}" for i in range(accounts)]
    for name in names:
        catalog.create_account(name, account_id=name)
    rng = random.Random(7)
    rows = []
    for i in range(pending):
        created = now - timedelta(seconds=pending - i)
        state = RequestState(
            id=f"{i:08d}-0000-0000-0000-000000000000",
            account_id=rng.choice(names),
            accounts=(),
            spec=spec,
            status=RequestStatus.PENDING,
            created_at=created,
            updated_at=created,
        )
        row = Catalog._row(state)
        if i % 500 == 0:  # a few building
            row["started_at"] = now
        rows.append(row | {"lease_owner": "w" if i % 500 == 0 else None})
    with catalog.transaction() as db:
        for start in range(0, len(rows), 5000):
            chunk = rows[start : start + 5000]
            for row in chunk:
                row["lease_expires_at"] = now + timedelta(hours=1) if row["lease_owner"] else None
            db.execute(requests.insert(), chunk)
    if catalog.engine.dialect.name == "postgresql":  # what autovacuum does in a live system
        with catalog.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.exec_driver_sql("VACUUM ANALYZE requests")
    with catalog.engine.connect() as db:
        found = db.execute(requests.select().where(requests.c.lease_owner.is_(None))).all()
    return [Catalog._state(r._mapping) for r in found]


def timed(samples: int, call: object) -> tuple[float, float]:
    took = []
    for _ in range(samples):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.9)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--catalog", default="sqlite")
    parser.add_argument("--pending", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    schema = None
    with tempfile.TemporaryDirectory() as folder:
        if args.catalog == "sqlite":
            url = f"sqlite:///{Path(folder) / 'catalog.db'}"
        else:
            schema = "bench_" + secrets.token_hex(4)
            with make_engine(args.catalog).begin() as db:
                db.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            sep = "&" if "?" in args.catalog else "?"
            url = f"{args.catalog}{sep}options=-csearch_path%3D{schema}"
        catalog = Catalog(url)
        try:
            catalog.migrate()
            queued = fill(catalog, args.pending, args.accounts)
            rng = random.Random(1)
            now = datetime.now(UTC)
            one = timed(args.samples, lambda: queue_positions(catalog, [rng.choice(queued)], now))
            page = timed(
                max(args.samples // 10, 5),
                lambda: queue_positions(catalog, rng.sample(queued, 100), now),
            )
            dialect = catalog.engine.dialect.name
            print(f"{args.pending} Pending over {args.accounts} accounts ({dialect})")
            print(f"one request:  median {one[0]:.1f} ms, p90 {one[1]:.1f} ms")
            print(f"page of 100:  median {page[0]:.1f} ms, p90 {page[1]:.1f} ms")
        finally:
            catalog.close()
            if schema is not None:
                with make_engine(args.catalog).begin() as db:
                    db.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
