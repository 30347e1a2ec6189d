"""The synthetic traffic generator: deterministic, and realistic in the ways cli.md asks."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mdr_reporting.domain.validation import validate_records
from mdr_reporting.generator import account_ids, generate, write_records
from mdr_reporting.generator.traffic import RECENT, _accounts
from mdr_reporting.generator.world import TAGS
from mdr_reporting.ingest.readers import read_file

START = date(2026, 3, 2)  # a Monday


@pytest.fixture(scope="module")
def traffic() -> pa.Table:
    return generate(60_000, 20, 14, START, seed=11)


def share(mask: pa.Array) -> float:
    return float(pc.mean(pc.cast(mask, pa.float64())).as_py())


def test_same_arguments_same_table_and_bytes(tmp_path: Path) -> None:
    assert generate(3000, 5, 3, START, seed=4).equals(generate(3000, 5, 3, START, seed=4))
    assert not generate(3000, 5, 3, START, seed=4).equals(generate(3000, 5, 3, START, seed=5))
    for name in ("x.ndjson.gz", "x.csv", "x.parquet.gz"):
        write_records(generate(500, 3, 2, START, seed=1), tmp_path / ("1" + name))
        write_records(generate(500, 3, 2, START, seed=1), tmp_path / ("2" + name))
        assert (tmp_path / ("1" + name)).read_bytes() == (tmp_path / ("2" + name)).read_bytes()


def test_exact_row_count_accounts_and_valid_records(traffic: pa.Table) -> None:
    assert traffic.num_rows == 60_000
    assert set(pc.unique(traffic.column("account_id")).to_pylist()) == set(account_ids(20))
    assert account_ids(3) == ["acct-01", "acct-02", "acct-03"]
    assert validate_records(traffic).ok
    assert generate(7, 2, 1, START, seed=1).num_rows == 7
    for message in traffic.column("id").to_pylist()[:1000]:
        assert str(uuid.UUID(message)) == message and uuid.UUID(message).version == 4


def test_written_files_read_back_the_same(tmp_path: Path) -> None:
    small = generate(400, 3, 2, START, seed=2)
    for name in ("r.ndjson", "r.csv.gz", "r.parquet"):
        write_records(small, tmp_path / name)
        chunks = list(read_file(tmp_path / name))
        read = pa.concat_tables(
            [validate_records(c.table, prior=c.prior).table for c in chunks]  # type: ignore[misc]
        )
        assert read.equals(small), name


def test_a_few_big_accounts_and_many_small(traffic: pa.Table) -> None:
    counts = sorted(Counter(traffic.column("account_id").to_pylist()).values(), reverse=True)
    assert counts[0] > 5 * counts[len(counts) // 2]
    assert sum(counts[:3]) > 0.4 * sum(counts)


def test_direction_type_parts_and_media(traffic: pa.Table) -> None:
    outbound = pc.equal(traffic.column("direction"), "outbound")
    assert 0.66 < share(outbound) < 0.74
    mms = pc.equal(traffic.column("message_type"), "MMS")
    assert 0.08 < share(mms) < 0.12
    assert pc.all(pc.is_valid(pc.filter(traffic.column("media_size_bytes"), mms))).as_py()
    assert pc.all(pc.is_null(pc.filter(traffic.column("media_size_bytes"), pc.invert(mms)))).as_py()
    assert 0.15 < share(pc.greater(traffic.column("parts"), 1)) < 0.35
    cost_ok = pc.equal(
        traffic.column("cost"),
        pc.multiply(traffic.column("rate"), pc.cast(traffic.column("parts"), pa.decimal128(10, 0))),
    )
    assert pc.all(cost_ok).as_py()


def test_numbers_short_codes_and_sender_ids(traffic: pa.Table) -> None:
    cld = pc.filter(traffic.column("cld"), pc.equal(traffic.column("direction"), "outbound"))
    assert pc.all(pc.match_substring_regex(cld, r"^\+[1-9]\d{7,14}$")).as_py()
    cli = pc.filter(traffic.column("cli"), pc.equal(traffic.column("direction"), "outbound"))
    short = share(pc.match_substring_regex(cli, r"^\d{5,6}$"))
    alpha = share(pc.match_substring_regex(cli, r"^[A-Z]"))
    assert 0.03 < short < 0.09 and 0.02 < alpha < 0.07
    assert len(pc.unique(traffic.column("country_code"))) >= 6
    assert pc.all(pc.match_substring_regex(traffic.column("mcc"), r"^\d{3}$")).as_py()


def test_statuses_depend_on_age(traffic: pa.Table) -> None:
    end = datetime(2026, 3, 16, tzinfo=ZoneInfo("UTC")).timestamp() * 1_000_000
    created = pc.cast(traffic.column("created_at"), pa.int64())
    recent = pc.greater(created, end - RECENT)
    outbound = pc.equal(traffic.column("direction"), "outbound")
    final_statuses = Counter(
        pc.filter(traffic.column("status"), pc.and_(outbound, pc.invert(recent))).to_pylist()
    )
    total = sum(final_statuses.values())
    assert final_statuses["delivered"] > 0.8 * total
    assert (
        0.02 < (final_statuses["delivery_failed"] + final_statuses["sending_failed"]) / total < 0.1
    )
    assert final_statuses["delivery_unconfirmed"] > 0.02 * total
    young = set(pc.filter(traffic.column("status"), pc.and_(outbound, recent)).to_pylist())
    assert young and young <= {"queued", "sending", "sent"}
    inbound = pc.filter(traffic.column("status"), pc.invert(outbound))
    assert set(inbound.to_pylist()) == {"received"}


def test_some_ids_come_twice_sent_then_final(traffic: pa.Table) -> None:
    ids = traffic.column("id").to_pylist()
    twice = [i for i, n in Counter(ids).items() if n == 2]
    assert 0.03 * len(ids) < len(twice) < 0.07 * len(ids)
    positions: dict[str, list[int]] = {}
    for row, message in enumerate(ids):
        positions.setdefault(message, []).append(row)
    statuses = traffic.column("status").to_pylist()
    updated = traffic.column("updated_at").to_pylist()
    for message in twice[:200]:
        first, second = positions[message]
        assert statuses[first] == "sent" and statuses[second] != "sent"
        assert updated[first] < updated[second]


def test_traffic_follows_the_local_day(traffic: pa.Table) -> None:
    zones = dict(zip(account_ids(20), _accounts_zones(), strict=True))
    hours = Counter(
        created.astimezone(ZoneInfo(zones[account])).hour
        for account, created in zip(
            traffic.column("account_id").to_pylist()[:20000],
            traffic.column("created_at").to_pylist()[:20000],
            strict=True,
        )
    )
    night = sum(hours[h] for h in range(1, 6))
    afternoon = sum(hours[h] for h in range(13, 18))
    assert afternoon > 5 * night


def _accounts_zones() -> list[str]:
    import numpy as np

    return _accounts(np.random.default_rng(11), 20).zone


def test_bodies_have_quotes_commas_newlines_and_json(traffic: pa.Table) -> None:
    bodies = pc.unique(traffic.column("message_body")).to_pylist()
    assert any('"' in b for b in bodies) and any("," in b for b in bodies)
    assert any("\n" in b for b in bodies) and any(b.startswith("{") for b in bodies)
    tags = traffic.column("tags")
    assert 0.5 < share(pc.greater(pc.list_value_length(tags), 0)) < 0.9


def test_no_record_repeats_a_tag() -> None:
    table = generate(20_000, 20, 30, date(2026, 11, 1), seed=1)
    tags = [row or [] for row in table.column("tags").to_pylist()]
    assert all(len(set(row)) == len(row) for row in tags)
    assert Counter(len(row) for row in tags)[3] > 500  # three tags still happen, distinct
    used = Counter(tag for row in tags for tag in row)
    assert set(used) == set(TAGS)
    assert min(used.values()) > 0.5 * max(used.values())  # still spread evenly
