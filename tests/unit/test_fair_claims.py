"""Fair claiming and the per-account Pending cap, on every catalog backend.

One account's flood must not hold back another's request: the worker takes requests
round-robin across accounts (fewest building first, then the longest-waiting turn).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.jobs import JobQueue
from mdr_reporting.domain.errors import RateLimited
from mdr_reporting.worker.testing import make_request
from tests.conftest import FakeClock

LEASE = timedelta(seconds=30)


@pytest.fixture
def queue(catalog: Catalog) -> JobQueue:
    return JobQueue(catalog, lease=LEASE, max_attempts=3, retention=timedelta(days=30))


def test_a_flooding_account_does_not_hold_back_another(
    catalog: Catalog, queue: JobQueue, clock: FakeClock
) -> None:
    flood = []
    for _ in range(6):
        flood.append(make_request(catalog, account_id="a"))
        clock.advance(seconds=1)
    small = make_request(catalog, account_id="b")
    first = queue.claim("w1")
    assert first is not None and first.state.id == flood[0].id  # b's turn: next, not last
    assert queue.complete(first.state.id, "w1", file_key="k", record_count=0, size_bytes=0)
    second = queue.claim("w1")
    assert second is not None and second.state.id == small.id
    assert queue.complete(second.state.id, "w1", file_key="k", record_count=0, size_bytes=0)
    rest = [queue.claim("w1") for _ in range(5)]
    assert [c.state.id for c in rest if c is not None] == [r.id for r in flood[1:]]


def test_round_robin_across_accounts_and_oldest_first_within_one(
    catalog: Catalog, queue: JobQueue, clock: FakeClock
) -> None:
    made: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    for n in range(3):
        for account in ("a", "b", "c"):
            made[account].append(make_request(catalog, account_id=account).id)
            clock.advance(seconds=1 + n)
    order: list[str] = []
    while (claim := queue.claim("w")) is not None:
        order.append(claim.state.account_id)
        for account, ids in made.items():
            if claim.state.id in ids:
                assert ids.index(claim.state.id) == order.count(account) - 1  # oldest first
        queue.complete(claim.state.id, "w", file_key="k", record_count=0, size_bytes=0)
        clock.advance(seconds=1)
    assert order == ["a", "b", "c"] * 3


def test_the_account_with_fewer_builds_running_goes_first(
    catalog: Catalog, queue: JobQueue, clock: FakeClock
) -> None:
    for _ in range(3):
        make_request(catalog, account_id="a")
        clock.advance(seconds=1)
    make_request(catalog, account_id="b")
    make_request(catalog, account_id="b")
    # two workers build at once: a's first request, then b (a already has one building)
    one = queue.claim("w1")
    clock.advance(seconds=1)
    two = queue.claim("w2")
    clock.advance(seconds=1)
    assert one is not None and two is not None
    assert (one.state.account_id, two.state.account_id) == ("a", "b")
    # a third worker: both accounts have one running; a's turn is older, so a
    three = queue.claim("w3")
    assert three is not None and three.state.account_id == "a"


def test_concurrent_claims_over_many_accounts_never_hand_out_a_request_twice(
    catalog: Catalog, queue: JobQueue
) -> None:
    ids = {make_request(catalog, account_id=f"acct-{n % 4}").id for n in range(24)}
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def claimer(n: int) -> None:
        barrier.wait()
        while (claim := queue.claim(f"w{n}")) is not None:
            with lock:
                claimed.append(claim.state.id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(claimed) == Counter(ids)


def test_the_pending_cap_refuses_a_create_with_a_429_until_one_completes(
    catalog: Catalog, queue: JobQueue, clock: FakeClock
) -> None:
    def create(account: str) -> None:
        clock.advance(seconds=1)  # creation order decides the first claim
        template = make_request(catalog, account_id=account)  # makes the account too
        catalog.delete_request(template.id)  # deleted requests do not count
        catalog.create_request(replace(template, id=str(uuid.uuid4())), max_pending=2)

    create("a")
    create("a")
    with pytest.raises(RateLimited) as refused:
        create("a")
    assert "2 Pending requests" in refused.value.detail
    assert refused.value.retry_after > 0
    clock.advance(seconds=1)  # so "a" is older and goes first, not by a tie of ids
    create("b")  # another account is not affected
    claim = queue.claim("w")
    assert claim is not None and claim.state.account_id == "a"
    assert queue.complete(claim.state.id, "w", file_key="k", record_count=0, size_bytes=0)
    create("a")  # room again
