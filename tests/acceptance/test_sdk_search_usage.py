"""The official ``telnyx`` SDK, unchanged but for ``base_url``, against a real ``mdr serve``:
``detail_records.list`` and ``reports.mdr_usage_reports.*``.

The records are generated here (seeded), ingested over HTTP in two batches (the second
holds newer versions, stale versions and ties, so a day has two files), and every
answer is compared with a count made in plain Python over the same records: the latest
version of each id (the latest ``updated_at``; an equal one changes nothing), the
parent's and its child's accounts, never the other account's.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import telnyx

from tests.acceptance.helpers import run_mdr, running_server
from tests.records import ndjson

PARENT, CHILD, OTHER = "acct-p", "acct-c", "acct-o"
STATUSES = [
    "queued",
    "sending",
    "sent",
    "delivered",
    "delivery_unconfirmed",
    "received",
    "sending_failed",
    "delivery_failed",
]
CARRIER = {
    "delivered": "delivered",
    "delivery_unconfirmed": "dlr_unconfirmed",
    "received": "received",
    "delivery_failed": "failed",
    "sending_failed": "gw_reject",
}
TAGS = ["otp", "vip", "campaign-7", "Promo"]
SENDERS = ["+13125550{:03d}", "13125551{:03d}", "+4477009{:03d}", "AcmeCo", "ACMECO-{:03d}"]


@dataclass
class World:
    url: str
    key: str
    now: datetime
    latest: list[dict[str, Any]]  # the latest version of every id, every account

    def client(self) -> telnyx.Telnyx:
        return telnyx.Telnyx(api_key=self.key, base_url=f"{self.url}/v2")

    def visible(self) -> list[dict[str, Any]]:
        return [r for r in self.latest if r["account_id"] in (PARENT, CHILD)]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _records(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """First batch (one version per id) and second batch (new, stale and tied versions)."""
    rng = random.Random(20261203)
    first: list[dict[str, Any]] = []
    for number in range(700):
        created = now - timedelta(hours=1, seconds=rng.randrange(6 * 86_400 - 7_200))
        created = created.replace(microsecond=rng.randrange(1_000_000))
        direction = rng.choice(["inbound", "outbound"])
        status = "received" if direction == "inbound" else rng.choice(STATUSES)
        row: dict[str, Any] = {
            "id": f"m-{number:05d}",
            "account_id": rng.choice([PARENT, PARENT, CHILD, OTHER]),
            "created_at": created.isoformat(),
            "updated_at": (created + timedelta(seconds=5)).isoformat(),
            "direction": direction,
            "cli": rng.choice(SENDERS).format(rng.randrange(1000)),
            "cld": rng.choice(["+1646555{:04d}", "+4915155{:04d}"]).format(rng.randrange(10_000)),
            "parts": rng.randint(1, 4),
            "status": status,
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
            "profile_id": rng.choice(["prof-a", "prof-b", None]),
            "cost": f"{Decimal(rng.randrange(0, 90_000)) / 1_000_000:.6f}",
            "currency": rng.choice(["USD", "USD", "EUR"]),
            "carrier": "T-Mobile USA",
        }
        first.append({k: v for k, v in row.items() if v is not None})
    second: list[dict[str, Any]] = []
    for row in rng.sample(first, 200):
        changed = dict(row)
        kind = rng.choice(["newer", "newer", "stale", "tie"])
        shift = {"newer": 60, "stale": -1, "tie": 5}[kind]
        changed["updated_at"] = (_time(row["created_at"]) + timedelta(seconds=shift)).isoformat()
        changed["status"] = "delivered" if row["direction"] == "outbound" else "received"
        changed["tags"] = rng.sample(TAGS, rng.randint(0, 2))
        changed["cost"] = f"{Decimal(rng.randrange(0, 90_000)) / 1_000_000:.6f}"
        changed["profile_id"] = rng.choice(["prof-a", "prof-c"])
        second.append(changed)
    return first, second


def _latest(batches: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Latest version per id, as api.md section 6 says: a later updated_at replaces."""
    latest: dict[str, dict[str, Any]] = {}
    for batch in batches:
        for row in batch:
            held = latest.get(row["id"])
            if held is None or _time(row["updated_at"]) > _time(held["updated_at"]):
                latest[row["id"]] = row
    return list(latest.values())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("sdk") / "data"
    for args in (
        ("Parent", "--id", PARENT),
        ("Child", "--id", CHILD, "--parent", PARENT),
        ("Other", "--id", OTHER),
    ):
        made = run_mdr("admin", "create-account", *args, data_dir=data_dir)
        assert made.returncode == 0, made.stderr
    keys = {}
    for scope in ("reports", "admin"):
        made = run_mdr(
            "admin",
            "create-key",
            "--account",
            PARENT,
            "--scope",
            scope,
            "--json",
            data_dir=data_dir,
        )
        assert made.returncode == 0, made.stderr
        keys[scope] = made.stdout.split('"key": "')[1].split('"')[0]
    now = datetime.now(UTC)
    first, second = _records(now)
    with running_server(data_dir) as url:
        for batch in (first, second):
            answer = httpx.post(
                f"{url}/ingest/mdrs",
                content=ndjson(batch),
                headers={
                    "Authorization": f"Bearer {keys['admin']}",
                    "Content-Type": "application/x-ndjson",
                },
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
        stats = run_mdr("lake", "stats", "--json", data_dir=data_dir)
        assert stats.returncode == 0, stats.stderr
        days = orjson.loads(stats.stdout)["per_day"]
        assert any(day["files"] == 2 for day in days), days  # the latest-version rule runs
        yield World(url, keys["reports"], now, _latest([first, second]))


def _order(rows: list[dict[str, Any]], descending: bool = True) -> list[str]:
    ordered = sorted(rows, key=lambda r: (_time(r["created_at"]), r["id"]), reverse=descending)
    return [r["id"] for r in ordered]


def _fold(number: str) -> str:
    return number.removeprefix("+").lower()


def test_every_page_through_the_sdk_is_the_latest_versions_newest_first(world: World) -> None:
    client = world.client()
    pages = client.detail_records.list(
        filter={"record_type": "messaging", "date_range": "last_7_days"}, page_size=50
    )
    found = [record.uuid for record in pages]  # the SDK's auto-pagination, every page
    assert found == _order(world.visible())
    first = client.detail_records.list(filter={"record_type": "messaging"}, page_size=20)
    assert len(first.data) == 20
    assert first.meta is not None and first.meta.page_number == 1


def test_records_are_the_sdk_model_with_the_latest_fields(world: World) -> None:
    client = world.client()
    page = client.detail_records.list(filter={"record_type": "messaging"}, page_size=100)
    by_id = {r["id"]: r for r in world.latest}
    assert page.data
    for record in page.data:
        assert isinstance(record, telnyx.types.detail_record_list_response.MessageDetailRecord)
        expected = by_id[record.uuid]
        assert record.record_type == "message_detail_record"
        assert record.user_id == expected["account_id"]
        assert record.message_status == expected["status"]  # type: ignore[attr-defined]
        assert record.status == CARRIER.get(expected["status"])
        assert record.cost == expected["cost"]
        assert record.tags == (",".join(expected["tags"]) or None)
        assert record.profile_id == expected.get("profile_id")
        assert record.created_at == _time(expected["created_at"])
        assert record.parts == expected["parts"]


CASES: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    (
        {"direction": "outbound", "status": "delivered"},
        lambda r: r["direction"] == "outbound" and r["status"] == "delivered",
    ),
    ({"cli": {"starts_with": "+1312"}}, lambda r: _fold(r["cli"]).startswith("1312")),
    ({"cli": {"contains": "acme"}}, lambda r: "acme" in _fold(r["cli"])),
    ({"cld": {"ends_with": "7"}, "status": "received"}, lambda r: r["cld"].endswith("7")),
    ({"tags": ["vip", "Promo"]}, lambda r: bool({"vip", "Promo"} & set(r["tags"]))),
    ({"profile_id": "prof-c"}, lambda r: r.get("profile_id") == "prof-c"),
    (
        {"status": ["gw_reject", "delivery_failed"], "cli": {"starts_with": "4477"}},
        lambda r: (
            r["status"] in ("sending_failed", "delivery_failed")
            and _fold(r["cli"]).startswith("4477")
        ),
    ),
]


def _statuses(status: str | list[str]) -> set[str]:
    return {status} if isinstance(status, str) else set(status)


@pytest.mark.parametrize(("extra", "keep"), CASES)
def test_filters_match_an_independent_count(
    world: World, extra: dict[str, Any], keep: Callable[[dict[str, Any]], bool]
) -> None:
    client = world.client()
    for descending in (True, False):
        pages = client.detail_records.list(
            filter={"record_type": "messaging", **extra},
            sort=["-created_at" if descending else "created_at"],
            page_size=7,
        )
        found = [record.uuid for record in pages]
        status = extra.get("status")
        wanted = [
            r
            for r in world.visible()
            if keep(r)
            and (status is None or _statuses(status) & {r["status"], CARRIER.get(r["status"])})
        ]
        assert wanted, extra  # the case selects something
        assert found == _order(wanted, descending)


def test_created_at_window_and_meta(world: World) -> None:
    client = world.client()
    start = world.now - timedelta(days=3)
    end = world.now - timedelta(days=1)
    page = client.detail_records.list(
        filter={
            "record_type": "messaging",
            "created_at": {"gte": start.isoformat(), "lt": end.isoformat()},
        },
        page_size=100,
        page_number=1,
    )
    wanted = [r for r in world.visible() if start <= _time(r["created_at"]) < end]
    assert [r.uuid for r in page.data] == _order(wanted)[:100]
    last = (len(wanted) + 9) // 10
    tail = client.detail_records.list(
        filter={
            "record_type": "messaging",
            "created_at": {"gte": start.isoformat(), "lt": end.isoformat()},
        },
        page_size=10,
        page_number=last,
    )
    assert [r.uuid for r in tail.data] == _order(wanted)[(last - 1) * 10 :]
    assert tail.meta is not None and tail.meta.total_pages == last
    raw = httpx.get(
        f"{world.url}/v2/detail_records",
        params={"filter[record_type]": "messaging", "page[size]": "10", "page[number]": last},
        headers={"Authorization": f"Bearer {world.key}"},
    ).json()
    assert raw["meta"]["page_number"] == last


def test_other_record_types_and_bad_filters_are_400_naming_the_parameter(world: World) -> None:
    client = world.client()
    with pytest.raises(telnyx.BadRequestError) as caught:
        client.detail_records.list(filter={"record_type": "call-control"})
    error = caught.value.body["errors"][0]  # type: ignore[index]
    assert error["source"] == {"parameter": "filter[record_type]"}
    assert "only 'messaging'" in error["detail"]
    for bad, parameter in (
        ({"date_range": "last_fortnight"}, "filter[date_range]"),
        ({"status": "lost"}, "filter[status]"),
        ({"created_at": {"gte": "yesterday"}}, "filter[created_at][gte]"),
        ({"cli": {"like": "1312%"}}, "filter[cli][like]"),
    ):
        with pytest.raises(telnyx.BadRequestError) as caught:
            client.detail_records.list(filter={"record_type": "messaging", **bad})
        assert caught.value.body["errors"][0]["source"] == {"parameter": parameter}  # type: ignore[index]
    with pytest.raises(telnyx.BadRequestError) as caught:
        client.detail_records.list(filter={"record_type": "messaging"}, page_size=101)
    assert caught.value.body["errors"][0]["source"] == {"parameter": "page[size]"}  # type: ignore[index]


def _usage(
    rows: list[dict[str, Any]], aggregation: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Usage counted in plain Python: per group, direction and currency (end inclusive)."""
    totals: dict[tuple[Any, str, str], dict[str, Any]] = defaultdict(
        lambda: {"sent": 0, "delivered": 0, "received": 0, "parts": 0, "cost": Decimal(0)}
    )
    for row in rows:
        if not start <= _time(row["created_at"]) <= end:
            continue
        if aggregation == "PROFILE":
            groups: list[Any] = [row.get("profile_id")]
        elif aggregation == "TAGS":
            groups = sorted(set(row["tags"])) or [None]
        else:
            groups = [None]
        for group in groups:
            total = totals[(group, row["direction"], row["currency"])]
            outbound = row["direction"] == "outbound"
            total["sent"] += outbound
            total["delivered"] += outbound and row["status"] == "delivered"
            total["received"] += not outbound
            total["parts"] += row["parts"]
            total["cost"] += Decimal(row["cost"])
    out = []
    for (group, direction, currency), total in totals.items():
        item: dict[str, Any] = {"direction": direction, "currency": currency}
        if aggregation == "PROFILE":
            item["profile_id"] = group
        if aggregation == "TAGS":
            item["tags"] = group
        item.update({k: str(v) for k, v in total.items()})
        out.append(item)
    return sorted(out, key=lambda i: sorted((k, str(v)) for k, v in i.items()))


def _normal(results: Any) -> list[dict[str, Any]]:
    items = [
        {k: v for k, v in r.to_dict().items() if v is not None or k in ("profile_id", "tags")}
        for r in results
    ]
    return sorted(items, key=lambda i: sorted((k, str(v)) for k, v in i.items()))


@pytest.mark.parametrize("aggregation", ["NO_AGGREGATION", "PROFILE", "TAGS"])
def test_usage_fetch_sync_equals_an_independent_count(world: World, aggregation: str) -> None:
    client = world.client()
    start, end = world.now - timedelta(days=4), world.now
    answer = client.reports.mdr_usage_reports.fetch_sync(
        aggregation_type=aggregation,  # type: ignore[arg-type]
        start_date=start,
        end_date=end,
    )
    assert answer.data is not None and answer.data.status == "COMPLETE"
    expected = _usage(world.visible(), aggregation, start, end)
    if aggregation == "NO_AGGREGATION":
        expected = [{k: v for k, v in e.items()} for e in expected]
    found = _normal(answer.data.result)
    if aggregation == "NO_AGGREGATION":
        found = [{k: v for k, v in f.items() if k not in ("profile_id", "tags")} for f in found]
    assert found == expected
    assert all("." in r.cost and len(r.cost.split(".")[1]) == 6 for r in answer.data.result or [])


def test_usage_fetch_sync_for_some_profiles(world: World) -> None:
    client = world.client()
    start, end = world.now - timedelta(days=7), world.now
    answer = client.reports.mdr_usage_reports.fetch_sync(
        aggregation_type="PROFILE", start_date=start, end_date=end, profiles=["prof-a", "prof-c"]
    )
    rows = [r for r in world.visible() if r.get("profile_id") in ("prof-a", "prof-c")]
    assert answer.data is not None
    assert _normal(answer.data.result) == _usage(rows, "PROFILE", start, end)


def test_usage_report_create_runs_on_the_worker(world: World) -> None:
    client = world.client()
    start, end = world.now - timedelta(days=5), world.now - timedelta(days=1)
    created = client.reports.mdr_usage_reports.create(
        aggregation_type="TAGS", start_date=start, end_date=end, profiles="prof-a,prof-b"
    )
    assert created.data is not None and created.data.id is not None
    report_id = created.data.id
    deadline = time.monotonic() + 30
    while True:
        got = client.reports.mdr_usage_reports.retrieve(report_id)
        assert got.data is not None
        if got.data.status == "COMPLETE":
            break
        assert got.data.status == "PENDING" and time.monotonic() < deadline
        time.sleep(0.1)
    rows = [r for r in world.visible() if r.get("profile_id") in ("prof-a", "prof-b")]
    assert _normal(got.data.result) == _usage(rows, "TAGS", start, end)
    assert got.data.profiles == "prof-a,prof-b"
    listed = [r.id for r in client.reports.mdr_usage_reports.list(page_size=5)]
    assert report_id in listed
    deleted = client.reports.mdr_usage_reports.delete(report_id)
    assert deleted.data is not None and deleted.data.id == report_id
    with pytest.raises(telnyx.NotFoundError):
        client.reports.mdr_usage_reports.retrieve(report_id)


def test_usage_window_errors_name_the_field(world: World) -> None:
    client = world.client()
    with pytest.raises(telnyx.BadRequestError) as caught:
        client.reports.mdr_usage_reports.fetch_sync(
            aggregation_type="PROFILE", start_date="2026-12-01", end_date="2026-11-01"
        )
    assert caught.value.body["errors"][0]["source"] == {"parameter": "end_date"}  # type: ignore[index]
    with pytest.raises(telnyx.BadRequestError) as caught:
        client.reports.mdr_usage_reports.create(
            aggregation_type="BY_CARRIER",  # type: ignore[arg-type]
            start_date="2026-11-01",
            end_date="2026-11-02",
        )
    assert caught.value.body["errors"][0]["source"] == {"pointer": "/aggregation_type"}  # type: ignore[index]
