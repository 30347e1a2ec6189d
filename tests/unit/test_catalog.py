"""The catalog on every configured backend: accounts, keys (hash only), requests, migrations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.catalog.schema import api_keys, metadata
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.errors import Conflict, InvalidInput, NotFound
from mdr_reporting.domain.requests import RequestState, parse_v1
from tests.conftest import FakeClock


def test_migrated_schema_equals_the_declared_one(catalog: Catalog) -> None:
    with catalog.engine.connect() as db:
        diff = compare_metadata(MigrationContext.configure(db), metadata)
    assert diff == []


def test_migrate_is_idempotent(catalog: Catalog) -> None:
    catalog.migrate()
    catalog.migrate()
    assert catalog.list_accounts() == []


def test_accounts_and_managed_tree(catalog: Catalog) -> None:
    catalog.create_account("Parent", account_id="p")
    catalog.create_account("Child", account_id="c", parent_id="p")
    catalog.create_account("Grandchild", account_id="g", parent_id="c")
    catalog.create_account("Other", account_id="o")
    assert catalog.managed_accounts("p") == ["c", "g", "p"]
    assert catalog.managed_accounts("c") == ["c", "g"]
    assert catalog.managed_accounts("o") == ["o"]
    assert [a.id for a in catalog.list_accounts()] == ["c", "g", "o", "p"]  # same time: by id


def test_account_errors(catalog: Catalog) -> None:
    catalog.create_account("A", account_id="a")
    with pytest.raises(Conflict):
        catalog.create_account("A again", account_id="a")
    with pytest.raises(NotFound):
        catalog.create_account("Orphan", parent_id="missing")
    with pytest.raises(InvalidInput):
        catalog.create_account("")


def test_catalog_never_holds_a_usable_key(catalog: Catalog) -> None:
    catalog.create_account("A", account_id="a")
    new = catalog.create_key("a", KeyScope.REPORTS)
    with catalog.engine.connect() as db:
        rows = [dict(r._mapping) for r in db.execute(sa.select(api_keys))]
        dump = "\n".join(str(v) for row in rows for v in row.values())
    assert new.secret not in dump
    assert new.secret[10:] not in dump  # not even the secret part behind the displayed prefix
    assert rows[0]["key_hash"] != new.secret and len(rows[0]["key_hash"]) == 64
    assert catalog.authenticate(new.secret) is not None
    assert catalog.authenticate(rows[0]["key_hash"]) is None  # the stored value is not a key


def test_keys_authenticate_revoke_and_record_last_use(catalog: Catalog, clock: FakeClock) -> None:
    catalog.create_account("A", account_id="a")
    new = catalog.create_key("a", "ingest")
    key = catalog.authenticate(new.secret)
    assert key is not None and key.scope is KeyScope.INGEST and key.account_id == "a"
    assert catalog.list_keys("a")[0].last_used_at == clock.now
    assert catalog.authenticate(new.secret + "x") is None
    assert catalog.authenticate("") is None
    catalog.revoke_key(new.key.id)
    assert catalog.authenticate(new.secret) is None
    with pytest.raises(NotFound):
        catalog.revoke_key("key_missing")


def test_key_errors(catalog: Catalog) -> None:
    with pytest.raises(NotFound):
        catalog.create_key("nobody", "reports")
    catalog.create_account("A", account_id="a")
    with pytest.raises(InvalidInput):
        catalog.create_key("a", "superuser")


def _state(request_id: str, account: str, created: datetime) -> RequestState:
    spec = parse_v1(
        {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-02T00:00:00Z"}, created
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


def test_requests_round_trip_list_and_delete(catalog: Catalog, clock: FakeClock) -> None:
    catalog.create_account("A", account_id="a")
    catalog.create_account("B", account_id="b")
    for n in range(3):
        clock.advance(seconds=1)
        catalog.create_request(_state(f"00000000-0000-0000-0000-00000000000{n}", "a", clock.now))
    catalog.create_request(_state("00000000-0000-0000-0000-0000000000bb", "b", clock.now))
    stored = catalog.get_request("00000000-0000-0000-0000-000000000001", ["a"])
    assert stored == _state("00000000-0000-0000-0000-000000000001", "a", stored.created_at)
    assert catalog.get_request("00000000-0000-0000-0000-000000000001", ["b"]) is None
    page, total = catalog.list_requests(["a"], offset=0, limit=2)
    assert total == 3 and [s.id[-1] for s in page] == ["2", "1"]
    assert catalog.delete_request("00000000-0000-0000-0000-000000000002", ["b"]) is None
    assert catalog.delete_request("00000000-0000-0000-0000-000000000002", ["a"]) is not None
    assert catalog.get_request("00000000-0000-0000-0000-000000000002") is None
    assert catalog.list_requests(None, offset=0, limit=10)[1] == 3


def test_idempotency_key_window(catalog: Catalog, clock: FakeClock) -> None:
    catalog.create_account("A", account_id="a")
    first, created = catalog.create_request(
        _state("00000000-0000-0000-0000-000000000001", "a", clock.now),
        idempotency_key="k1",
        idempotency_hash="h",
    )
    again, created_again = catalog.create_request(
        _state("00000000-0000-0000-0000-000000000002", "a", clock.now),
        idempotency_key="k1",
        idempotency_hash="h",
    )
    assert created and not created_again and again.id == first.id
    with pytest.raises(Conflict):
        catalog.create_request(
            _state("00000000-0000-0000-0000-000000000003", "a", clock.now),
            idempotency_key="k1",
            idempotency_hash="other",
        )
    clock.advance(hours=24, seconds=1)
    later, created_later = catalog.create_request(
        _state("00000000-0000-0000-0000-000000000004", "a", clock.now),
        idempotency_key="k1",
        idempotency_hash="h",
    )
    assert created_later and later.id.endswith("4")


def test_timestamps_come_back_as_aware_utc(catalog: Catalog, clock: FakeClock) -> None:
    catalog.create_account("A", account_id="a")
    account = catalog.get_account("a")
    assert account is not None and account.created_at == clock.now
    assert account.created_at.tzinfo is not None
    assert account.created_at.utcoffset() == UTC.utcoffset(None)
