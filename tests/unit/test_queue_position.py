"""Status while waiting: the queue position predicts the fair claim order exactly, and a
building request shows its start and an estimate from its progress rate."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.catalog.waiting import queue_positions
from mdr_reporting.domain.requests import estimate_completion
from mdr_reporting.worker.testing import make_request
from tests.conftest import FakeClock


def _queue(catalog: Catalog) -> JobQueue:
    return JobQueue(
        catalog, lease=timedelta(minutes=5), max_attempts=3, retention=timedelta(days=30)
    )


@pytest.mark.parametrize(
    ("seed", "builds_outlast_the_wait"), [(s, b) for s in range(3) for b in (False, True)]
)
def test_positions_are_the_order_in_which_workers_claim(
    catalog: Catalog, clock: FakeClock, seed: int, builds_outlast_the_wait: bool
) -> None:
    """Either every build ends before the next claim (one worker), or none does (workers
    enough for all); a build already running counts in the second case."""
    rng = random.Random(seed)
    queue = _queue(catalog)
    accounts = [f"acct-{i}" for i in range(rng.randint(2, 4))]
    # earlier turns: some accounts had a request built before, in some order
    for account in rng.sample(accounts, rng.randint(0, len(accounts))):
        make_request(catalog, account_id=account)
        clock.advance(seconds=1)
        claim = queue.claim("old")
        assert claim is not None
        queue.complete(claim.state.id, "old", file_key="k", record_count=0, size_bytes=0)
    # one account may have a build running all along (it then goes after the others)
    holder = None
    if builds_outlast_the_wait:
        make_request(catalog, account_id=accounts[0])
        clock.advance(seconds=1)
        holder = queue.claim("busy")
        assert holder is not None
    waiting = []
    for _ in range(rng.randint(6, 14)):
        waiting.append(make_request(catalog, account_id=rng.choice(accounts)))
        clock.advance(seconds=rng.choice([1, 2]))  # the real clock has microseconds: no ties
    positions = queue_positions(catalog, waiting, clock())
    assert sorted(positions.values()) == list(range(len(waiting)))
    claimed = []
    while (claim := queue.claim("w")) is not None:
        clock.advance(seconds=1)  # workers claim one after another, not all in one instant
        claimed.append(claim.state.id)
        if not builds_outlast_the_wait:
            queue.complete(claim.state.id, "w", file_key="k", record_count=0, size_bytes=0)
    assert claimed == sorted(positions, key=positions.__getitem__)


def test_the_estimate_follows_the_progress_rate() -> None:
    start = FakeClock().now
    assert estimate_completion(start, 0.0, start + timedelta(seconds=5)) is None
    assert estimate_completion(None, 0.5, start) is None
    assert estimate_completion(start, 0.25, start + timedelta(seconds=10)) == start + timedelta(
        seconds=40
    )
    done = start + timedelta(seconds=3)
    assert estimate_completion(start, 1.0, done) == done
