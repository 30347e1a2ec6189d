"""Token buckets in the catalog, on every backend, shared by several catalog objects.

Two ``Catalog`` objects on one database stand for two API processes: the limit is
one limit across both, and concurrent takes never spend more tokens than there are.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.ratelimits import RateLimiter
from mdr_reporting.catalog.store import use_wal
from tests.conftest import FakeClock


@pytest.fixture
def second(catalog_url: str, clock: FakeClock, catalog: Catalog) -> Iterator[Catalog]:
    """Another process's catalog on the same database (``catalog`` migrated it)."""
    other = Catalog(catalog_url, clock=clock)
    yield other
    other.close()


def test_a_bucket_grants_its_burst_then_refuses_then_refills(
    catalog: Catalog, clock: FakeClock
) -> None:
    limiter = RateLimiter(catalog)
    answers = [limiter.take("create:k1", rate=2.0, burst=3) for _ in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert [a.remaining for a in answers] == [2, 1, 0, 0]
    assert answers[0].limit == 3
    assert answers[2].reset == 2  # 3 tokens at 2 a second
    assert answers[3].retry_after == 1
    clock.advance(seconds=0.5)  # one token back
    assert limiter.take("create:k1", rate=2.0, burst=3).allowed
    assert not limiter.take("create:k1", rate=2.0, burst=3).allowed
    clock.advance(seconds=3600)  # never more than the burst
    answers = [limiter.take("create:k1", rate=2.0, burst=3) for _ in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]


def test_buckets_are_separate_per_key_and_kind(catalog: Catalog) -> None:
    limiter = RateLimiter(catalog)
    assert limiter.take("create:k1", rate=1.0, burst=1).allowed
    assert not limiter.take("create:k1", rate=1.0, burst=1).allowed
    assert limiter.take("create:k2", rate=1.0, burst=1).allowed
    assert limiter.take("ingest:k1", rate=1.0, burst=1).allowed


def test_a_clock_behind_another_process_never_drains_a_bucket(
    catalog: Catalog, clock: FakeClock
) -> None:
    limiter = RateLimiter(catalog)
    assert limiter.take("general:k", rate=1.0, burst=2).allowed
    clock.advance(seconds=-30)
    answer = limiter.take("general:k", rate=1.0, burst=2)
    assert answer.allowed and answer.remaining == 0


def test_two_catalogs_on_one_database_share_the_limit(
    catalog: Catalog, second: Catalog, clock: FakeClock
) -> None:
    one, two = RateLimiter(catalog), RateLimiter(second)
    assert one.take("create:k", rate=1.0, burst=2).allowed
    assert two.take("create:k", rate=1.0, burst=2).allowed
    assert not one.take("create:k", rate=1.0, burst=2).allowed
    assert not two.take("create:k", rate=1.0, burst=2).allowed
    clock.advance(seconds=1)
    assert two.take("create:k", rate=1.0, burst=2).allowed
    assert not one.take("create:k", rate=1.0, burst=2).allowed


def test_concurrent_takes_from_two_catalogs_grant_exactly_the_burst(
    catalog: Catalog, second: Catalog
) -> None:
    limiters = [RateLimiter(catalog), RateLimiter(second)]
    granted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def hammer(n: int) -> None:
        barrier.wait()
        for _ in range(10):  # the fake clock stands still: no refill
            answer = limiters[n % 2].take("ingest:k", rate=1.0, burst=25)
            with lock:
                granted.append(answer.allowed)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 25
    assert granted.count(False) == 35


def test_connections_opening_a_new_file_together_all_open_it(tmp_path: Path) -> None:
    """Switching a new file to WAL needs its exclusive lock, and SQLite answers "database
    is locked" at once, without its busy handler, to a connection that meets another one
    doing the same (plain PRAGMAs failed about one try in seven here; seen in CI when
    several threads opened a new buckets file together)."""
    errors: list[Exception] = []
    for trial in range(50):
        path = tmp_path / f"new-{trial}.db"
        barrier = threading.Barrier(6)

        def open_it(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            barrier.wait()
            try:
                use_wal(connection)
                connection.execute("CREATE TABLE IF NOT EXISTS t (x)")
            except Exception as exc:
                errors.append(exc)
            connection.close()

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        check.close()


def test_a_lock_held_past_the_timeout_still_fails_with_sqlites_error(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(sqlite3.connect(path, timeout=0.1), timeout=0.2)
    holder.execute("ROLLBACK")
    holder.close()
