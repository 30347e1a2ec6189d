"""Record search and usage over real lakes (local and S3), their parameters, and the usage
report job in the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mdr_reporting.catalog import Catalog
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.errors import InvalidInput
from mdr_reporting.lake import Lake
from mdr_reporting.lake.local import LocalLake
from mdr_reporting.lake.s3 import S3Lake
from mdr_reporting.objectstore import S3Location
from mdr_reporting.search import RecordSearchService, parse_search
from mdr_reporting.search.params import date_range
from mdr_reporting.search.records import search_records
from mdr_reporting.usage import UsageJobs, UsageService, UsageStore, parse_fetch_params
from mdr_reporting.usage.params import parse_create_body
from tests.conftest import FakeClock
from tests.records import BASE, record, table

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake]:
    if request.param == "local":
        yield LocalLake(tmp_path / "lake")
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    catalog_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(catalog_url)
    catalog.migrate()
    catalog.close()
    made = S3Lake(S3Location(bucket, "lake", endpoint), catalog_url)
    yield made
    made.close()


def _rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Three days of a parent, a child and another account; then newer, stale and tied
    versions in a second batch (a second file in each day)."""
    first = []
    for n in range(90):
        first.append(
            record(
                n * 2881,  # seconds: spread over three days
                account_id=["acct-a", "acct-b", "acct-o"][n % 3],
                status=["sent", "delivered", "delivery_failed"][n % 3 - 1],
                direction="inbound" if n % 5 == 0 else "outbound",
                cli=["+13125550100", "AcmeCo", "447700900"][n % 3],
                tags=[["otp"], ["vip", "otp"], []][n % 3],
                cost=f"0.{n % 10}",
                parts=1 + n % 2,
            )
        )
    for row in first:
        if row["direction"] == "inbound":
            row["status"] = "received"
    second = []
    for index, row in enumerate(first[::4]):
        changed = dict(row)
        created = datetime.fromisoformat(row["created_at"])
        shift = [120, 1, 0][index % 3]  # newer; stale (the first version has +1 s); a tie
        changed["updated_at"] = (created + timedelta(seconds=shift)).isoformat()
        changed["status"] = "delivered" if row["direction"] == "outbound" else "received"
        changed["cost"] = "0.000001"
        changed["tags"] = ["later"]
        second.append(changed)
    return first, second


def _latest(batches: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    held: dict[str, dict[str, Any]] = {}
    for batch in batches:
        for row in batch:
            version = datetime.fromisoformat(row.get("updated_at") or row["sent_at"])
            old = held.get(row["id"])
            if old is None or version > old["_version"]:
                held[row["id"]] = {**row, "_version": version}
    return held


def _fill(lake: Lake) -> dict[str, dict[str, Any]]:
    first, second = _rows()
    lake.append(table(first))
    lake.append(table(second))
    return _latest([first, second])


def test_search_pages_are_latest_versions_in_order_on_every_lake(lake: Lake) -> None:
    latest = _fill(lake)
    assert any(len(files) == 2 for files in lake.snapshot().files.values())
    service = RecordSearchService(lake)
    visible = [r for r in latest.values() if r["account_id"] in ("acct-a", "acct-b")]
    query = [("filter[record_type]", "messaging"), ("filter[status]", "delivered")]
    wanted = sorted(
        (r for r in visible if r["status"] == "delivered"),
        key=lambda r: (r["created_at"], r["id"]),
    )
    for sort, order in (("-created_at", wanted[::-1]), ("created_at", wanted)):
        found: list[str] = []
        for number in range(1, 20):
            page = [*query, ("sort", sort), ("page[size]", "4"), ("page[number]", str(number))]
            body = service.envelope(["acct-a", "acct-b"], parse_search(page, NOW))
            found += [r["uuid"] for r in body["data"]]
            if number >= body["meta"]["total_pages"]:
                assert body["meta"]["total_exact"] is (len(found) == len(order))
                break
        assert found == [r["id"] for r in order]
    tagged = service.envelope(
        ["acct-a", "acct-b"],
        parse_search([*query[:1], ("filter[tags]", "later"), ("page[size]", "100")], NOW),
    )
    assert sorted(r["uuid"] for r in tagged["data"]) == sorted(
        r["id"] for r in visible if r["tags"] == ["later"]
    )
    assert all(r["cost"] == "0.000001" for r in tagged["data"])


def test_number_filters_fold_case_and_plus(lake: Lake) -> None:
    latest = _fill(lake)
    service = RecordSearchService(lake)
    for name, value, keep in (
        ("filter[cli][contains]", "acme", lambda r: "acme" in r["cli"].lower()),
        ("filter[cli][starts_with]", "+1312", lambda r: r["cli"].startswith("+1312")),
        ("filter[cli][starts_with]", "4477", lambda r: r["cli"].lstrip("+").startswith("4477")),
        ("filter[cld][ends_with]", "123", lambda r: r["cld"].endswith("123")),
    ):
        params = [("filter[record_type]", "messaging"), (name, value), ("page[size]", "100")]
        body = service.envelope(["acct-a", "acct-b", "acct-o"], parse_search(params, NOW))
        assert sorted(r["uuid"] for r in body["data"]) == sorted(
            r["id"] for r in latest.values() if keep(r)
        )


def test_usage_sums_latest_versions_exactly_on_every_lake(lake: Lake) -> None:
    latest = _fill(lake)
    service = UsageService(lake)
    start, end = BASE - timedelta(days=1), BASE + timedelta(days=5)
    query = parse_fetch_params(
        [
            ("aggregation_type", "TAGS"),
            ("start_date", start.isoformat()),
            ("end_date", end.isoformat()),
        ],
        NOW,
    )
    found = service.result(["acct-a", "acct-b"], query)
    totals: dict[tuple[Any, str], list[Any]] = {}
    for row in latest.values():
        if row["account_id"] == "acct-o":
            continue
        for tag in sorted(set(row["tags"])) or [None]:
            total = totals.setdefault((tag, row["direction"]), [0, 0, 0, 0, Decimal(0)])
            out = row["direction"] == "outbound"
            total[0] += out
            total[1] += out and row["status"] == "delivered"
            total[2] += not out
            total[3] += row["parts"]
            total[4] += Decimal(row["cost"])
    assert {(r["tags"], r["direction"]): r for r in found}.keys() == totals.keys()
    for item in found:
        sent, delivered, received, parts, cost = totals[(item["tags"], item["direction"])]
        assert (item["sent"], item["delivered"], item["received"], item["parts"]) == (
            str(sent),
            str(delivered),
            str(received),
            str(parts),
        )
        assert item["cost"] == f"{cost:.6f}" and item["currency"] == "USD"


def test_search_skips_row_groups_and_stops_at_the_first_full_day(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    day = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [
        {
            **record(0),
            "id": f"m-{n:06d}",
            "account_id": f"acct-{'abc'[n * 3 // 36_000]}",
            "created_at": (day + timedelta(milliseconds=n)).isoformat(),
            "sent_at": None,
        }
        for n in range(36_000)
    ]
    lake.append(table([{k: v for k, v in r.items() if v is not None} for r in rows]))
    lake.append(
        table(
            [
                {
                    **record(1),
                    "id": "yesterday",
                    "account_id": "acct-b",
                    "created_at": "2026-02-28T10:00:00+00:00",
                    "sent_at": "2026-02-28T10:00:01+00:00",
                }
            ]
        )
    )
    snapshot = lake.snapshot()
    search = parse_search([("filter[record_type]", "messaging"), ("page[size]", "5")], NOW)
    page = search_records(snapshot, ["acct-b"], search)
    assert page.days_read == 1  # the newest day filled the page: the day before is not read
    assert page.row_groups_read == 2  # of this day's three row groups, acct-b's two only
    assert [r["id"] for r in page.records] == [f"m-{n:06d}" for n in range(23_999, 23_994, -1)]
    assert not page.exhausted


def test_search_parameters() -> None:
    now = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)  # a Wednesday
    day = datetime(2026, 3, 4, tzinfo=UTC)
    assert date_range("today", now) == (day, day + timedelta(days=1))
    assert date_range("yesterday", now) == (day - timedelta(days=1), day)
    assert date_range("last_week", now) == (day - timedelta(days=9), day - timedelta(days=2))
    assert date_range("this_month", now) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert date_range("last_month", datetime(2026, 1, 9, tzinfo=UTC))[0] == datetime(
        2025, 12, 1, tzinfo=UTC
    )
    assert date_range("last_3_days", now) == (day - timedelta(days=2), day + timedelta(days=1))
    base = [("filter[record_type]", "messaging")]
    search = parse_search(
        [
            *base,
            ("filter[date_range]", "this_month"),
            ("filter[created_at][gt]", "2026-03-02T00:00:00Z"),
            ("filter[created_at][lte]", "2026-03-03"),
            ("filter[status]", "failed,delivered"),
        ],
        now,
    )
    assert search.start == datetime(2026, 3, 2, 0, 0, 0, 1, tzinfo=UTC)
    assert search.end == datetime(2026, 3, 3, 0, 0, 0, 1, tzinfo=UTC)
    assert search.statuses == ("delivery_failed", "delivered")
    for bad, parameter in (
        ([], "filter[record_type]"),
        ([("filter[record_type]", "sip-trunking")], "filter[record_type]"),
        ([*base, ("filter[connection]", "1")], "filter[connection]"),
        ([*base, ("sort", "created_at"), ("sort", "-created_at")], "sort"),
        ([*base, ("page[size]", "0")], "page[size]"),
        ([*base, ("filter[direction]", "sideways")], "filter[direction]"),
        ([*base, ("filter[cli][contains]", "+")], "filter[cli][contains]"),
        ([*base, ("filter[tags]", "a,,b")], "filter[tags]"),
    ):
        with pytest.raises(InvalidInput) as caught:
            parse_search(bad, now)
        assert caught.value.items[0].parameter == parameter, bad


def test_usage_parameters() -> None:
    query = parse_fetch_params(
        [("aggregation_type", "PROFILE"), ("start_date", "2026-03-01"), ("end_date", "2026-03-02")],
        NOW,
    )
    assert (query.start, query.end) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 3, tzinfo=UTC),  # a date end includes its whole day
    )
    query = parse_fetch_params([("aggregation_type", "TAGS"), ("profiles", "p1,p2,p1")], NOW)
    assert (query.start, query.end, query.profiles) == (NOW - timedelta(days=30), NOW, ("p1", "p2"))
    for body, pointer in (
        ({"aggregation_type": "PROFILE", "start_date": "2026-03-01"}, "/end_date"),
        ({"aggregation_type": "X", "start_date": "2026-03-01", "end_date": "2026-03-01"}, None),
        (
            {"aggregation_type": "TAGS", "start_date": "2024-01-01", "end_date": "2026-01-01"},
            "/start_date",
        ),
        (
            {
                "aggregation_type": "TAGS",
                "start_date": "2026-01-01",
                "end_date": "2026-01-01",
                "profiles": ["a"],
            },
            "/profiles",
        ),
    ):
        with pytest.raises(InvalidInput) as caught:
            parse_create_body(body, NOW)
        assert caught.value.items[0].pointer == (pointer or "/aggregation_type")


def test_usage_report_job_lifecycle(catalog: Catalog, clock: FakeClock, tmp_path: Path) -> None:
    catalog.create_account("A", account_id="acct-a")
    lake = LocalLake(tmp_path / "lake")
    lake.append(table([record(n, cost="0.1") for n in range(3)]))
    store = UsageStore(catalog, lease=timedelta(minutes=1), max_attempts=2)
    jobs = UsageJobs(store, UsageService(lake), retry_after=timedelta(seconds=5))
    query = parse_create_body(
        {
            "aggregation_type": "NO_AGGREGATION",
            "start_date": "2026-03-01",
            "end_date": "2026-03-01",
        },
        clock(),
    )
    made = store.create("acct-a", ["acct-a"], query)
    clock.advance(seconds=1)
    assert made.status is RequestStatus.PENDING and made.result is None
    assert store.get(made.id, ["acct-other"]) is None  # another account: not found
    assert jobs.run_once("w/0") and not jobs.run_once("w/0")
    done = store.get(made.id, None)
    assert done is not None and done.status is RequestStatus.COMPLETE
    assert done.result == [
        {
            "direction": "outbound",
            "sent": "3",
            "delivered": "0",
            "received": "0",
            "parts": "3",
            "cost": "0.300000",
            "currency": "USD",
        }
    ]
    # A worker that stops before completing: the lease expires, the attempts run out.
    second = store.create("acct-a", ["acct-a"], query)
    for _ in range(2):
        claim = store.claim("dead/0")
        assert claim is not None and claim.report.id == second.id
        assert store.claim("other/0") is None  # leased
        clock.advance(minutes=2)
    assert store.claim("w/0") is None
    failed = store.get(second.id, None)
    assert failed is not None and failed.status is RequestStatus.FAILED and failed.error
    # Deleted while computed: completing finds nothing.
    third = store.create("acct-a", ["acct-a"], query)
    claim = store.claim("w/0")
    assert claim is not None
    assert store.delete(third.id, ["acct-a"]) is not None
    assert not store.complete(third.id, "w/0", [])
    reports, total = store.page(["acct-a"], offset=0, limit=10)
    assert total == 2 and [r.id for r in reports] == [second.id, made.id]
