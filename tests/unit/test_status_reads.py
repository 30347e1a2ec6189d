"""The hot path of a status read: key lookup, the visible request, the rate-limit take.

On a SQLite file these run on plain sqlite3 (and may run on the event loop); they must
answer exactly what the SQLAlchemy path answers, on every backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.catalog.ratelimits import RateLimiter, buckets_file
from mdr_reporting.catalog.schema import requests
from mdr_reporting.catalog.sqlite_reads import sqlite_file
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState, parse_v1
from mdr_reporting.files import LinkSigner
from tests.conftest import FakeClock


def _state(request_id: str, account: str, created: datetime) -> RequestState:
    spec = parse_v1(
        {
            "start_time": "2024-01-01T00:00:00Z",
            "end_time": "2024-01-02T00:00:00Z",
            "filters": [{"filter_type": "and", "tags_list": ["x"]}],
            "include_message_body": True,
        },
        created,
    )
    return RequestState(
        id=request_id,
        account_id=account,
        accounts=(account,),
        spec=spec,
        status=RequestStatus.PENDING,
        created_at=created,
        updated_at=created,
    )


def _both_paths(catalog: Catalog) -> list[Catalog]:
    """The catalog as it is, and (on a SQLite file) the same catalog without fast reads."""
    if catalog.fast_reads is None:
        return [catalog]
    generic = Catalog(catalog.url, clock=catalog.clock)
    generic.fast_reads = None
    return [catalog, generic]


def test_a_sqlite_file_catalog_reads_on_sqlite3_and_others_do_not(catalog: Catalog) -> None:
    on_file = sqlite_file(catalog.url) is not None
    assert catalog.reads_never_wait is on_file
    assert (catalog.fast_reads is not None) is on_file
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("sqlite:///x.db?mode=ro") is None


def test_visible_request_follows_the_account_tree(catalog: Catalog, clock: FakeClock) -> None:
    catalog.create_account("Parent", account_id="p")
    catalog.create_account("Child", account_id="c", parent_id="p")
    catalog.create_account("Grandchild", account_id="g", parent_id="c")
    catalog.create_account("Other", account_id="o")
    catalog.create_account("Other child", account_id="oc", parent_id="o")
    rid = "00000000-0000-0000-0000-000000000001"
    catalog.create_request(_state(rid, "g", clock.now))
    for store in _both_paths(catalog):
        expected = store.get_request(rid)
        assert expected is not None
        for viewer in ("g", "c", "p", None):  # None: an admin key
            assert store.visible_request(rid, viewer) == expected, viewer
        for viewer in ("o", "oc", "nobody"):
            assert store.visible_request(rid, viewer) is None, viewer
        assert store.visible_request("00000000-0000-0000-0000-000000000002", None) is None
    catalog.delete_request(rid)
    for store in _both_paths(catalog):
        assert store.visible_request(rid, "g") is None
        assert store.visible_request(rid, None) is None


def test_fast_reads_return_the_values_sqlalchemy_returns(
    catalog: Catalog, clock: FakeClock
) -> None:
    """Datetimes (aware UTC, microseconds), booleans, floats and JSON columns alike."""
    catalog.create_account("A", account_id="a")
    new = catalog.create_key("a", KeyScope.REPORTS)
    clock.advance(seconds=0.123456)
    rid = "00000000-0000-0000-0000-0000000000aa"
    catalog.create_request(_state(rid, "a", clock.now))
    stores = _both_paths(catalog)
    keys = [store.find_key(new.secret) for store in stores]
    states = [store.visible_request(rid, "a") for store in stores]
    assert keys[0] is not None and states[0] is not None
    assert all(k == keys[0] for k in keys)
    assert all(s == states[0] for s in states)
    assert states[0].created_at.tzinfo is not None
    assert states[0].spec.include_message_body is True
    assert isinstance(states[0].progress, float)


def test_find_key_reads_and_touch_key_writes_once_a_minute(
    catalog: Catalog, clock: FakeClock
) -> None:
    catalog.create_account("A", account_id="a")
    new = catalog.create_key("a", KeyScope.REPORTS)
    found = catalog.find_key(new.secret)
    assert found is not None and found.last_used_at is None
    assert catalog.key_needs_touch(found)
    touched = catalog.touch_key(found)
    assert touched.last_used_at == clock.now
    again = catalog.find_key(new.secret)
    assert again is not None and again.last_used_at == clock.now
    assert not catalog.key_needs_touch(again)
    clock.advance(seconds=61)
    assert catalog.key_needs_touch(again)
    assert catalog.find_key("mdr_unknown") is None
    assert catalog.find_key("not-a-key") is None
    catalog.revoke_key(new.key.id)
    for store in _both_paths(catalog):
        assert store.find_key(new.secret) is None  # at once, in every process
        assert store.authenticate(new.secret) is None


def test_take_now_spends_the_same_bucket_as_take(catalog: Catalog) -> None:
    limiter = RateLimiter(catalog)
    first = limiter.take_now("general:k", rate=1.0, burst=3)
    if sqlite_file(catalog.url) is None:
        assert first is None  # only a SQLite file is taken from without a thread
        return
    assert first is not None and first.allowed and first.remaining == 2
    assert limiter.take("general:k", rate=1.0, burst=3).remaining == 1
    third = limiter.take_now("general:k", rate=1.0, burst=3)
    assert third is not None and third.remaining == 0
    refused = limiter.take_now("general:k", rate=1.0, burst=3)
    assert refused is not None and not refused.allowed and refused.retry_after == 1


def test_take_now_never_waits_for_another_process(tmp_path: Path, clock: FakeClock) -> None:
    database = tmp_path / "catalog.db"
    catalog = Catalog(f"sqlite:///{database}", clock=clock)
    catalog.migrate()
    limiter = RateLimiter(catalog)
    assert limiter.take("general:k", rate=1.0, burst=5).allowed  # creates the file
    other = sqlite3.connect(buckets_file(database), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        assert limiter.take_now("general:k", rate=1.0, burst=5) is None
        other.execute("ROLLBACK")
    finally:
        other.close()
    after = limiter.take_now("general:k", rate=1.0, burst=5)
    assert after is not None and after.remaining == 3  # the refused attempt took nothing
    assert buckets_file(database) == tmp_path / "catalog.buckets.db"
    catalog.close()


def test_concurrent_takes_of_one_process_spend_each_token_once(catalog: Catalog) -> None:
    limiter = RateLimiter(catalog)
    granted: list[bool] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(25):
            answer = limiter.take("general:hot", rate=0.001, burst=60)
            with lock:
                granted.append(answer.allowed)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 200
    assert granted.count(True) == 60


def test_an_unchanged_request_row_is_converted_once(catalog: Catalog, clock: FakeClock) -> None:
    """A SQLite catalog keeps the state an unchanged row converted to; any change of the
    row (here its progress, then its deletion) is seen at the next read."""
    catalog.create_account("A", account_id="a")
    rid = "00000000-0000-0000-0000-0000000000bb"
    catalog.create_request(_state(rid, "a", clock.now))
    first = catalog.visible_request(rid, "a")
    again = catalog.visible_request(rid, "a")
    assert first is not None
    assert again == first
    if catalog.fast_reads is not None:
        assert again is first  # not converted again
    with catalog.transaction() as db:
        db.execute(requests.update().where(requests.c.id == rid).values(progress=0.5))
    changed = catalog.visible_request(rid, "a")
    assert changed is not None
    assert changed.progress == 0.5
    assert catalog.visible_request(rid, "someone-else") is None
    catalog.delete_request(rid)
    assert catalog.visible_request(rid, "a") is None


def test_a_link_is_signed_once_a_second(clock: FakeClock) -> None:
    signer = LinkSigner("s" * 20, "http://mdr.test", timedelta(hours=3), clock)
    state = dataclasses.replace(
        _state("r-1", "a", clock.now), status=RequestStatus.COMPLETE, file_key="r-1/f.csv"
    )
    first = signer.report_url(state)
    assert first is not None
    assert signer.report_url(state) is first  # the same second: made once
    other = signer.report_url(dataclasses.replace(state, file_key="r-1/g.csv"))
    assert other is not None
    assert other != first  # another file: another link
    clock.advance(seconds=1)
    later = signer.report_url(state)
    assert later != first  # a fresh expiry
    link = later.split("?", 1)[1].split("&")
    fields = dict(part.split("=", 1) for part in link)
    signer.verify("r-1", fields["file"], fields["expires"], fields["sig"].replace("%2E", "."))
    assert int(fields["expires"]) == int((clock.now + timedelta(hours=3)).timestamp())


def test_a_key_row_is_converted_once_and_revocation_counts_at_once(
    catalog: Catalog, clock: FakeClock
) -> None:
    catalog.create_account("A", account_id="a")
    new = catalog.create_key("a", KeyScope.REPORTS)
    first = catalog.find_key(new.secret)
    assert first is not None
    if catalog.fast_reads is not None:
        assert catalog.find_key(new.secret) is first  # the same row: not converted again
    touched = catalog.touch_key(first)
    assert catalog.find_key(new.secret) == touched  # the row changed: read as it is now
    catalog.revoke_key(new.key.id)
    assert catalog.find_key(new.secret) is None


def test_takes_of_one_loop_turn_share_one_commit(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """take_soon: the takes asked for by the tasks of one turn of the event loop run in
    one transaction, in order, each spending exactly as a take of its own would."""
    limiter = RateLimiter(catalog)
    if limiter._sqlite is None:
        return  # only a SQLite file is taken from on the loop
    batches: list[int] = []
    take = type(limiter._sqlite).take

    def counted(self: Any, batch: list[Any], **kwargs: Any) -> Any:
        batches.append(len(batch))
        return take(self, batch, **kwargs)

    monkeypatch.setattr(type(limiter._sqlite), "take", counted)

    async def five() -> list[Any]:
        return await asyncio.gather(
            *(limiter.take_soon("general:k", rate=1.0, burst=3) for _ in range(5))
        )

    answers = asyncio.run(five())
    assert batches == [5]
    assert [a.allowed for a in answers] == [True, True, True, False, False]
    assert [a.remaining for a in answers] == [2, 1, 0, 0, 0]
    alone = asyncio.run(five())  # the next turn: a bucket still empty (the clock stands)
    assert batches == [5, 5]
    assert not any(a.allowed for a in alone)


def test_a_loop_turn_defers_to_takes_waiting_in_threads(catalog: Catalog) -> None:
    limiter = RateLimiter(catalog)
    if limiter._sqlite is None:
        return
    with limiter._writer:  # a thread's batch is running: the loop's takes go to a thread

        async def one() -> Any:
            return await limiter.take_soon("general:k", rate=1.0, burst=3)

        assert asyncio.run(one()) is None
