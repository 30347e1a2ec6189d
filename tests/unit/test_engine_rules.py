"""One test per rule of api.md sections 4 to 7 on hand-made records; each fails if it breaks."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.filters import Filter
from mdr_reporting.domain.query import ReportQuery, compile_query
from mdr_reporting.domain.records import RECORD_SCHEMA, REPORT_COLUMNS, with_folded_numbers
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines.base import Cancelled, SnapshotFileMissing
from mdr_reporting.engines.duckdb import DuckDBEngine
from mdr_reporting.lake.base import Snapshot

DAY = datetime(2024, 3, 10, tzinfo=UTC)
ENGINE = DuckDBEngine(memory_limit="256MB", threads=2)


def rec(message_id: str, **fields: Any) -> dict[str, Any]:
    created = fields.pop("created_at", DAY + timedelta(hours=1))
    row: dict[str, Any] = {
        "id": message_id,
        "account_id": "acc",
        "created_at": created,
        "updated_at": created,
        "sent_at": None,
        "completed_at": None,
        "direction": "outbound",
        "cli": "+13125550100",
        "cld": "+447700900123",
        "message_type": "SMS",
        "parts": 1,
        "status": "delivered",
        "error_code": None,
        "carrier": None,
        "mcc": None,
        "mnc": None,
        "country_code": None,
        "connection_id": None,
        "profile_id": None,
        "tags": None,
        "rate": None,
        "cost": None,
        "currency": "USD",
        "media_size_bytes": None,
        "message_body": None,
    }
    row.update(fields)
    return row


def lake(root: Path, *files: Sequence[dict[str, Any]], folded: bool = False) -> Snapshot:
    """Each argument is one file; rows go to the day of their created_at.

    Without ``folded`` the files are as written before the lake stored folded numbers.
    """
    per_day: dict[date, list[str]] = {}
    for index, rows in enumerate(files):
        by_day: dict[date, list[dict[str, Any]]] = {}
        for row in rows:
            by_day.setdefault(row["created_at"].date(), []).append(row)
        for day, day_rows in by_day.items():
            path = root / f"{day}-{index}.parquet"
            day_rows.sort(key=lambda r: (r["account_id"], r["created_at"]))
            table = pa.Table.from_pylist(day_rows, schema=RECORD_SCHEMA)
            pq.write_table(with_folded_numbers(table) if folded else table, path)
            per_day.setdefault(day, []).append(str(path))
    return Snapshot(1, {day: tuple(paths) for day, paths in per_day.items()})


def request(**changes: Any) -> ReportRequest:
    fields: dict[str, Any] = {
        "start_time": DAY - timedelta(days=5),
        "end_time": DAY + timedelta(days=5),
        "timezone": "UTC",
        "directions": tuple(Direction),
        "record_types": tuple(RecordType),
    }
    fields.update(changes)
    return ReportRequest(**fields)


def build(tmp: Path, snapshot: Snapshot, req: ReportRequest, accounts: Sequence[str] = ("acc",)):
    out = tmp / "report.csv"
    result = ENGINE.build(compile_query(req, accounts), snapshot, out)
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode(), newline="")))
    assert result.rows == len(rows)
    return rows


def ids(tmp: Path, snapshot: Snapshot, req: ReportRequest, **kw: Any) -> list[str]:
    return [row["id"] for row in build(tmp, snapshot, req, **kw)]


def numbers(field: str, match: str, value: str, kind: str = "and") -> Filter:
    return Filter(kind, field, match=match, value=value)  # type: ignore[arg-type]


# Section 4: filters.


@pytest.mark.parametrize(
    ("value", "stored", "expected"),
    [
        ("+1312", "13125550100", True),  # '+' on the value side ignored
        ("1312", "+13125550100", True),  # '+' on the record side ignored
        ("1312", "++13125550100", False),  # only one '+'
        ("acme", "ACMEBank", True),  # case-insensitive
        ("ACME", "acmebank", True),
        ("a%b", "a%b-shop", True),  # '%' literal
        ("a%b", "axxb-shop", False),
        ("a_b", "axb-shop", False),  # '_' literal
        ("a*", "abc", False),  # '*' literal
        ("o'n", "O'Neil", True),  # quote literal (and no SQL injection)
        ("k\\s", "back\\slash", True),  # backslash literal
        ("k\\s", "backslash", False),
    ],
)
def test_number_matching_is_literal(
    tmp_path: Path, value: str, stored: str, expected: bool
) -> None:
    snapshot = lake(tmp_path, [rec("m", cli=stored)])
    req = request(
        filters=(numbers("cli", "starts_with" if value[0] in "+1" else "contains", value),)
    )
    assert ids(tmp_path, snapshot, req) == (["m"] if expected else [])


@pytest.mark.parametrize("folded", [True, False], ids=["folded", "older-files"])
@pytest.mark.parametrize(
    ("match", "value", "stored", "expected"),
    [
        ("contains", "οδος", "+ΟΔΟΣ", True),  # Python folds a final Σ to ς (SQL lower(): σ)
        ("ends_with", "Σ", "ΟΔΟΣ", False),  # a lone Σ folds to σ, the stored final one to ς
        ("starts_with", "i\u0307stanbul", "İSTANBUL", True),  # İ: i + U+0307 (SQL lower(): i)
        ("contains", "i\u0307", "İZMİR", True),
        ("contains", "istanbul", "İSTANBUL", False),
    ],
)
def test_numbers_fold_as_python_lower_case(
    tmp_path: Path, folded: bool, match: str, value: str, stored: str, expected: bool
) -> None:
    """The domain's folding decides (api.md section 4), not the engine's ``lower()``."""
    snapshot = lake(tmp_path, [rec("m", cli=stored)], folded=folded)
    req = request(filters=(numbers("cli", match, value),))
    assert ids(tmp_path, snapshot, req) == (["m"] if expected else [])


def test_starts_and_ends_with_differ_from_contains(tmp_path: Path) -> None:
    snapshot = lake(tmp_path, [rec("m", cld="+447700900123")])
    assert ids(tmp_path, snapshot, request(filters=(numbers("cld", "ends_with", "0123"),))) == ["m"]
    assert ids(tmp_path, snapshot, request(filters=(numbers("cld", "starts_with", "0123"),))) == []
    assert ids(tmp_path, snapshot, request(filters=(numbers("cld", "contains", "7700"),))) == ["m"]


def test_tags_match_any_listed_tag_exactly(tmp_path: Path) -> None:
    snapshot = lake(
        tmp_path,
        [rec("a", tags=["vip", "x"]), rec("b", tags=["VIP"]), rec("c", tags=None), rec("d")],
    )
    req = request(filters=(Filter("and", "tags", tags=("vip", "gold")),))
    assert ids(tmp_path, snapshot, req) == ["a"]


def test_and_then_or_reads_left_to_right(tmp_path: Path) -> None:
    hour = timedelta(hours=1)
    snapshot = lake(
        tmp_path,
        [
            rec("both", cli="1312", tags=["vip"], created_at=DAY + hour),
            rec("cli-only", cli="1312", created_at=DAY + 2 * hour),
            rec("or-only", cli="999", cld="777", created_at=DAY + 3 * hour),
            rec("none", cli="999", cld="000", created_at=DAY + 4 * hour),
        ],
    )
    req = request(
        filters=(
            numbers("cli", "starts_with", "1312"),
            Filter("and", "tags", tags=("vip",)),
            numbers("cld", "contains", "777", "or"),
        )
    )
    assert ids(tmp_path, snapshot, req) == ["both", "or-only"]


def test_or_never_widens_beyond_other_criteria(tmp_path: Path) -> None:
    snapshot = lake(tmp_path, [rec("in", direction="inbound"), rec("out", direction="outbound")])
    req = request(
        directions=(Direction.OUTBOUND,),
        filters=(numbers("cli", "contains", "nothing"), numbers("cli", "contains", "1312", "or")),
    )
    assert ids(tmp_path, snapshot, req) == ["out"]


# Sections 5 and 6: window, record types, connections, profiles, latest version.


def test_window_includes_start_and_excludes_end(tmp_path: Path) -> None:
    start, end = DAY + timedelta(hours=1), DAY + timedelta(hours=2)
    snapshot = lake(
        tmp_path,
        [
            rec("before", created_at=start - timedelta(microseconds=1)),
            rec("at-start", created_at=start),
            rec("at-end", created_at=end),
            rec("last", created_at=end - timedelta(microseconds=1)),
        ],
    )
    assert ids(tmp_path, snapshot, request(start_time=start, end_time=end)) == ["at-start", "last"]


def test_record_types_select_statuses(tmp_path: Path) -> None:
    statuses = ["delivered", "sent", "delivery_failed", "received", "queued", "sending_failed"]
    snapshot = lake(
        tmp_path,
        [rec(s, status=s, created_at=DAY + timedelta(minutes=i)) for i, s in enumerate(statuses)],
    )
    req = request(record_types=(RecordType.INCOMPLETE, RecordType.ERRORS))
    assert ids(tmp_path, snapshot, req) == ["sent", "delivery_failed", "queued", "sending_failed"]


def test_connections_profiles_and_accounts(tmp_path: Path) -> None:
    snapshot = lake(
        tmp_path,
        [
            rec("c1", connection_id="1", profile_id="p"),
            rec("c2", connection_id="2", profile_id="p"),
            rec("none", connection_id=None, profile_id=None),
            rec("other-account", account_id="zzz", connection_id="1", profile_id="p"),
        ],
    )
    assert ids(tmp_path, snapshot, request(connections=("1",))) == ["c1"]
    assert ids(tmp_path, snapshot, request(profiles=("p",))) == ["c1", "c2"]
    assert ids(tmp_path, snapshot, request(), accounts=("acc", "zzz")) == [
        "c1",
        "c2",
        "none",
        "other-account",
    ]


def test_criteria_apply_to_the_latest_version_only(tmp_path: Path) -> None:
    t = DAY + timedelta(hours=1)
    later = t + timedelta(minutes=5)
    snapshot = lake(
        tmp_path,
        [
            rec("was-sent", status="sent", created_at=t),
            rec("now-sent", status="delivered", created_at=t + timedelta(seconds=1)),
            rec("tag-gone", tags=["vip"], created_at=t + timedelta(seconds=2)),
        ],
        [
            rec("was-sent", status="delivered", created_at=t, updated_at=later),
            rec("now-sent", status="sent", created_at=t + timedelta(seconds=1), updated_at=later),
            rec("tag-gone", tags=[], created_at=t + timedelta(seconds=2), updated_at=later),
        ],
    )
    rows = build(tmp_path, snapshot, request(record_types=(RecordType.COMPLETE,)))
    assert [(r["id"], r["status"]) for r in rows] == [
        ("was-sent", "delivered"),
        ("tag-gone", "delivered"),
    ]
    req = request(filters=(Filter("and", "tags", tags=("vip",)),))
    assert ids(tmp_path, snapshot, req) == []


def test_equal_or_older_updated_at_changes_nothing(tmp_path: Path) -> None:
    t = DAY + timedelta(hours=1)
    snapshot = lake(
        tmp_path,
        [rec("m", status="sent", created_at=t, updated_at=t + timedelta(minutes=1))],
        [rec("m", status="delivered", created_at=t, updated_at=t + timedelta(minutes=1))],
        [rec("m", status="queued", created_at=t, updated_at=t)],
    )
    assert [r["status"] for r in build(tmp_path, snapshot, request())] == ["sent"]


# Section 7: the file.


def test_rows_sort_by_created_at_then_id_bytes(tmp_path: Path) -> None:
    t = DAY + timedelta(hours=1)
    snapshot = lake(
        tmp_path,
        [
            rec("b", created_at=t),
            rec("B", created_at=t),
            rec("é", created_at=t),
            rec("z", created_at=t),
            rec("early", created_at=t - timedelta(microseconds=1)),
        ],
    )
    assert ids(tmp_path, snapshot, request()) == ["early", "B", "b", "z", "é"]


@pytest.mark.parametrize(
    ("zone", "instant", "text"),
    [
        (
            "America/Chicago",
            datetime(2024, 3, 10, 7, 59, 59, tzinfo=UTC),
            "2024-03-10T01:59:59-06:00",
        ),
        ("America/Chicago", datetime(2024, 3, 10, 8, 0, tzinfo=UTC), "2024-03-10T03:00:00-05:00"),
        ("America/Chicago", datetime(2024, 11, 3, 6, 30, tzinfo=UTC), "2024-11-03T01:30:00-05:00"),
        ("America/Chicago", datetime(2024, 11, 3, 7, 30, tzinfo=UTC), "2024-11-03T01:30:00-06:00"),
        (
            "Europe/London",
            datetime(2024, 3, 31, 1, 0, 0, 5, tzinfo=UTC),
            "2024-03-31T02:00:00.000005+01:00",
        ),
        (
            "Australia/Lord_Howe",
            datetime(2024, 4, 6, 14, 59, tzinfo=UTC),
            "2024-04-07T01:59:00+11:00",
        ),
        (
            "Australia/Lord_Howe",
            datetime(2024, 4, 6, 15, 0, tzinfo=UTC),
            "2024-04-07T01:30:00+10:30",
        ),
        (
            "UTC",
            datetime(2024, 6, 1, 0, 0, 0, 120000, tzinfo=UTC),
            "2024-06-01T00:00:00.120000+00:00",
        ),
    ],
)
def test_timestamps_carry_the_zone_offset_of_each_row(
    tmp_path: Path, zone: str, instant: datetime, text: str
) -> None:
    snapshot = lake(tmp_path, [rec("m", created_at=instant, completed_at=instant)])
    (row,) = build(
        tmp_path,
        snapshot,
        request(
            start_time=instant - timedelta(days=1),
            end_time=instant + timedelta(days=1),
            timezone=zone,
        ),
    )
    assert row["created_at"] == text
    assert row["completed_at"] == text
    assert row["sent_at"] == ""


def test_completed_at_on_another_day_gets_its_own_offset(tmp_path: Path) -> None:
    created = datetime(2024, 3, 9, 20, 0, tzinfo=UTC)
    completed = datetime(2024, 3, 11, 20, 0, tzinfo=UTC)
    snapshot = lake(tmp_path, [rec("m", created_at=created, completed_at=completed)])
    req = request(start_time=created - timedelta(days=1), timezone="America/Chicago")
    (row,) = build(tmp_path, snapshot, req)
    assert row["created_at"] == "2024-03-09T14:00:00-06:00"
    assert row["completed_at"] == "2024-03-11T15:00:00-05:00"


def test_cells_header_quoting_and_bodies_round_trip(tmp_path: Path) -> None:
    body = 'he said "hi",\r\nthen sent {"json": [1, "two"]}\n#done'
    snapshot = lake(
        tmp_path,
        [
            rec(
                "m",
                tags=["a", "b"],
                rate=Decimal("0.0075"),
                cost=Decimal("0"),
                status="delivery_failed",
                parts=3,
                media_size_bytes=12,
                message_body=body,
                carrier="",
            )
        ],
    )
    out = tmp_path / "r.csv"
    ENGINE.build(compile_query(request(include_message_body=True), ["acc"]), snapshot, out)
    data = out.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    header, _ = data.split(b"\r\n", 1)
    assert header.decode().split(",") == [*REPORT_COLUMNS, "message_body"]
    (row,) = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    assert row["message_body"] == body
    assert row["tags"] == "a;b"
    assert (row["rate"], row["cost"]) == ("0.007500", "0.000000")
    assert (row["record_type"], row["parts"], row["media_size_bytes"]) == ("error", "3", "12")
    assert b',"",' not in data  # an empty string is an empty cell, as Python's csv writes it


def test_empty_result_is_a_header_only_file(tmp_path: Path) -> None:
    snapshot = lake(tmp_path, [rec("m")])
    out = tmp_path / "r.csv"
    result = ENGINE.build(compile_query(request(), ["nobody"]), snapshot, out)
    assert result.rows == 0
    assert out.read_bytes() == ",".join(REPORT_COLUMNS).encode() + b"\r\n"
    assert result.size_bytes == out.stat().st_size


# Building: days, progress, cancellation, vanished files.


def _three_days(tmp_path: Path) -> Snapshot:
    return lake(tmp_path, [rec(f"m{i}", created_at=DAY + timedelta(days=i)) for i in range(3)])


def test_only_the_window_days_are_read(tmp_path: Path) -> None:
    snapshot = _three_days(tmp_path)
    files = dict(snapshot.files)
    files[date(2023, 1, 1)] = (str(tmp_path / "not-parquet.parquet"),)
    (tmp_path / "not-parquet.parquet").write_text("garbage")
    req = request(start_time=DAY, end_time=DAY + timedelta(days=2))
    assert ids(tmp_path, Snapshot(2, files), req) == ["m0", "m1"]
    files[DAY.date() + timedelta(days=3)] = ()  # a day listed without files
    req = request(start_time=DAY + timedelta(days=1), end_time=DAY + timedelta(days=4))
    assert ids(tmp_path, Snapshot(3, files), req) == ["m1", "m2"]


def test_progress_per_day_and_cancel_between_days(tmp_path: Path) -> None:
    snapshot = _three_days(tmp_path)
    seen: list[float] = []
    query = compile_query(request(), ["acc"])
    ENGINE.build(query, snapshot, tmp_path / "r.csv", progress=seen.append)
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])

    out = tmp_path / "cancelled.csv"
    with pytest.raises(Cancelled):
        ENGINE.build(query, snapshot, out, cancelled=lambda: len(seen) > 3, progress=seen.append)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]


def test_a_vanished_file_asks_for_a_fresh_snapshot(tmp_path: Path) -> None:
    snapshot = _three_days(tmp_path)
    Path(snapshot.files[DAY.date() + timedelta(days=1)][0]).unlink()
    out = tmp_path / "r.csv"
    with pytest.raises(SnapshotFileMissing):
        ENGINE.build(compile_query(request(), ["acc"]), snapshot, out)
    assert not out.exists()


def test_memory_limit_is_respected_by_configuration(tmp_path: Path) -> None:
    """The engine's own connection settings, not the process-wide defaults, bound memory."""
    engine = DuckDBEngine(memory_limit="64MB", threads=1)
    snapshot = _three_days(tmp_path)
    query: ReportQuery = compile_query(request(), ["acc"])
    assert engine.build(query, snapshot, tmp_path / "r.csv").rows == 3


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=12), min_size=1, max_size=40
    )
)
def test_any_text_is_quoted_as_python_csv_quotes_it(tmp_path: Path, texts: list[str]) -> None:
    """Every character, not only the ones the spec names, round-trips like Python's csv."""
    hour = DAY + timedelta(hours=1)
    rows = [
        rec(f"m{i:03d}", created_at=hour, cli=text, carrier=text, message_body=text)
        for i, text in enumerate(texts)
    ]
    snapshot = lake(tmp_path, rows)
    out = tmp_path / "r.csv"
    ENGINE.build(compile_query(request(include_message_body=True), ["acc"]), snapshot, out)
    parsed = list(csv.DictReader(io.StringIO(out.read_bytes().decode(), newline="")))
    assert [(r["cli"], r["carrier"], r["message_body"]) for r in parsed] == [
        (t, t, t) for t in texts
    ]
    expected = io.StringIO(newline="")
    writer = csv.writer(expected, lineterminator="\r\n")
    for row in parsed:
        writer.writerow(row.values())
    header = out.read_bytes().split(b"\r\n", 1)[0] + b"\r\n"
    assert out.read_bytes() == header + expected.getvalue().encode()


def test_files_without_statistics_still_get_the_right_offsets(tmp_path: Path) -> None:
    """The zone spans then come from the data itself."""
    created = datetime(2024, 11, 3, 6, 30, tzinfo=UTC)
    completed = datetime(2024, 11, 3, 7, 30, tzinfo=UTC)
    path = tmp_path / "plain.parquet"
    table = pa.Table.from_pylist(
        [rec("m", created_at=created, completed_at=completed)], RECORD_SCHEMA
    )
    pq.write_table(table, path, write_statistics=False)
    assert pq.read_metadata(path).row_group(0).column(2).statistics is None
    snapshot = Snapshot(1, {created.date(): (str(path),)})
    req = request(start_time=created - timedelta(days=1), end_time=created + timedelta(days=1))
    (row,) = build(tmp_path, snapshot, dataclasses.replace(req, timezone="America/Chicago"))
    assert row["created_at"] == "2024-11-03T01:30:00-05:00"
    assert row["completed_at"] == "2024-11-03T01:30:00-06:00"


def test_decimals_always_have_six_places(tmp_path: Path) -> None:
    """Even from a file whose writer chose another scale."""
    schema = RECORD_SCHEMA.set(
        RECORD_SCHEMA.get_field_index("rate"), pa.field("rate", pa.decimal128(12, 2))
    )
    row = rec("m", rate=Decimal("-1.50"), cost=Decimal("0.000001"))
    path = tmp_path / "scaled.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema), path)
    snapshot = Snapshot(1, {row["created_at"].date(): (str(path),)})
    (out,) = build(tmp_path, snapshot, request())
    assert (out["rate"], out["cost"]) == ("-1.500000", "0.000001")
