"""Small randomized lakes for engine tests: records as dicts, written as the lake writes them.

Each UTC day of ``created_at`` gets one to three Parquet files (LAKE_SCHEMA,
sorted by account_id then created_at); the versions of an id are spread over
the day's files, so latest-version resolution has work to do.  Some files can be
written as before the lake stored folded numbers (RECORD_SCHEMA only).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.records import RECORD_SCHEMA, with_folded_numbers
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines import duckdb as engine_module
from mdr_reporting.lake.base import Snapshot
from mdr_reporting.lake.build import LAYOUT_KEY, LAYOUT_VALUE

Record = dict[str, Any]

ACCOUNTS = ("acc-1", "acc-2", "acc-3")
STATUSES = (
    "delivered",
    "delivery_unconfirmed",
    "received",
    "queued",
    "sending",
    "sent",
    "sending_failed",
    "delivery_failed",
)
NUMBERS = (
    "+13125550100",
    "+13125550199",
    "13125550100",
    "+447700900123",
    "447700900123",
    "+61255501234",
    "12345",
    "AcmeBank",
    "ACMEBANK",
    "acme%bank",
    "acme_bank",
    "O'Neil",
    "back\\slash",
    "*SALE*",
    "+%_",
    "++1312",
    "Ünïcode-É",
    "ΟΔΟΣ",  # Python folds the final sigma to ς, SQL lower() to σ
    "οδος",
    "+ΣΟΦΙΑΣ",
    "İstanbul",  # Python folds İ to i + U+0307, SQL lower() to i
    "i\u0307stanbul",
    "İZMİR",
    "",
    "+",
)
TAGS = ("vip", "VIP", "campaign-7", "x%", "o'k", "a_b", "#hash", "é")
CONNECTIONS = ("1001", "1002", "conn-x", None)
PROFILES = ("prof-a", "prof-b", None)
BODIES = (
    None,
    "",
    "hello",
    'he said "hi", then left',
    "line one\nline two",
    "windows\r\nline",
    "lone\rreturn",
    '{"json": [1, "two", {"three": null}]}',
    "comma, inside",
    "ünïcødé ✓ 🚀",
    "#not a comment",
    " leading and trailing ",
    "'single' and `back`",
    "\t tab",
)
IDS = ("a", "B", "b", "é", "z", "msg-1", "msg-10", "msg-2", "Z9", "_x", "%y")


def transition_anchors() -> list[datetime]:
    """UTC instants of offset changes (and one plain midnight) to centre data sets on."""
    return [
        datetime(2024, 3, 10, 8, 0, tzinfo=UTC),  # America/Chicago springs forward
        datetime(2024, 11, 3, 7, 0, tzinfo=UTC),  # America/Chicago falls back
        datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # Europe/London
        datetime(2024, 10, 27, 1, 0, tzinfo=UTC),  # Europe/London
        datetime(2024, 4, 6, 15, 0, tzinfo=UTC),  # Australia/Lord_Howe, half an hour back
        datetime(2024, 10, 5, 15, 30, tzinfo=UTC),  # Australia/Lord_Howe, forward
        datetime(2024, 3, 10, 5, 30, tzinfo=UTC),  # America/St_Johns
        datetime(2024, 6, 1, 0, 0, tzinfo=UTC),  # a plain UTC midnight
    ]


def _instant(rng: random.Random, anchor: datetime) -> datetime:
    """Near the anchor, often on whole seconds, sometimes exactly on it or a midnight."""
    choice = rng.random()
    if choice < 0.1:
        return anchor
    if choice < 0.15:
        return datetime.combine(anchor.date(), datetime.min.time(), UTC)
    seconds = rng.choice([rng.randint(-7200, 7200), rng.randint(-36 * 3600, 36 * 3600)])
    micro = 0 if rng.random() < 0.5 else rng.randint(1, 999_999)
    return anchor + timedelta(seconds=seconds, microseconds=micro)


def _money(rng: random.Random) -> Decimal | None:
    choice = rng.random()
    if choice < 0.15:
        return None
    if choice < 0.25:
        return Decimal("0.000000")
    return Decimal(rng.randint(-100, 10**9)).scaleb(-6).quantize(Decimal("0.000001"))


def _version(rng: random.Random, base: Record) -> Record:
    """A later version: status, tags, numbers and more may change; id, account, created_at not."""
    row = dict(base)
    for name, pool in (
        ("status", STATUSES),
        ("cli", NUMBERS),
        ("cld", NUMBERS),
        ("connection_id", CONNECTIONS),
        ("profile_id", PROFILES),
        ("direction", ("inbound", "outbound")),
    ):
        if rng.random() < 0.4:
            row[name] = rng.choice(pool)
    if rng.random() < 0.4:
        row["tags"] = _tags(rng)
    if rng.random() < 0.3:
        row["completed_at"] = row["created_at"] + timedelta(
            seconds=rng.randint(0, 4 * 86400), microseconds=rng.choice([0, 123456])
        )
    return row


def _tags(rng: random.Random) -> list[str] | None:
    if rng.random() < 0.2:
        return None
    return rng.sample(TAGS, rng.randint(0, 3))


def _text(rng: random.Random, pool: tuple[str | None, ...]) -> str | None:
    return rng.choice(pool)


def records(rng: random.Random, anchor: datetime, messages: int) -> list[list[Record]]:
    """``messages`` messages, each a list of its versions in ingest order."""
    out: list[list[Record]] = []
    for index in range(messages):
        created = _instant(rng, anchor)
        message_id = rng.choice(IDS) + f"-{index}" if rng.random() < 0.9 else f"{index}"
        sent = None if rng.random() < 0.2 else created + timedelta(seconds=rng.randint(0, 90))
        base: Record = {
            "id": message_id,
            "account_id": rng.choice(ACCOUNTS),
            "created_at": created,
            "updated_at": created + timedelta(seconds=rng.randint(0, 600)),
            "sent_at": sent,
            "completed_at": None,
            "direction": rng.choice(("inbound", "outbound")),
            "cli": rng.choice(NUMBERS),
            "cld": rng.choice(NUMBERS),
            "message_type": rng.choice(("SMS", "MMS")),
            "parts": rng.randint(1, 4),
            "status": rng.choice(STATUSES),
            "error_code": _text(rng, (None, "", "30008", "40001")),
            "carrier": _text(rng, (None, "T-Mobile USA, Inc.", 'Carrier "X"')),
            "mcc": _text(rng, (None, "310", "234")),
            "mnc": _text(rng, (None, "260", "015")),
            "country_code": _text(rng, (None, "US", "GB")),
            "connection_id": rng.choice(CONNECTIONS),
            "profile_id": rng.choice(PROFILES),
            "tags": _tags(rng),
            "rate": _money(rng),
            "cost": _money(rng),
            "currency": rng.choice(("USD", "EUR")),
            "media_size_bytes": None if rng.random() < 0.5 else rng.randint(0, 5_000_000),
            "message_body": rng.choice(BODIES),
        }
        versions = [base]
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
            newer = _version(rng, versions[-1])
            step = rng.choice((0, -5, 30, 3600))  # equal, older (a late re-send), newer
            newer["updated_at"] = versions[-1]["updated_at"] + timedelta(seconds=step)
            if step == 0 and rng.random() < 0.5:
                newer = dict(versions[-1])  # an identical re-send
            versions.append(newer)
        out.append(versions)
    return out


def layout(
    rng: random.Random, messages: list[list[Record]], *, most_files: int = 3
) -> dict[date, list[list[Record]]]:
    """Spread versions over one to three files per day, each file sorted as the lake sorts it.

    A message's versions go to files in ingest order (a later version never sits
    in an earlier file), as appends would place them.
    """
    per_day: dict[date, list[list[Record]]] = {}
    for versions in messages:
        day = versions[0]["created_at"].date()
        files = per_day.setdefault(day, [[] for _ in range(rng.randint(1, most_files))])
        slot = 0
        for version in versions:
            slot = rng.randint(slot, len(files) - 1)
            files[slot].append(version)
    for files in per_day.values():
        for rows in files:
            rows.sort(key=lambda row: (row["account_id"], row["created_at"]))
    return per_day


def lake_laid_out(rows: list[Record]) -> list[Record]:
    """One file's rows as the lake writes a file: the latest version of each id (the first
    on a tie of ``updated_at``), sorted by account_id, created_at, then id in byte order."""
    latest: dict[str, Record] = {}
    for row in rows:
        held = latest.get(row["id"])
        if held is None or row["updated_at"] > held["updated_at"]:
            latest[row["id"]] = row
    return sorted(
        latest.values(), key=lambda r: (r["account_id"], r["created_at"], r["id"].encode())
    )


def write_lake(
    root: Path,
    files: dict[date, list[list[Record]]],
    legacy: random.Random | None = None,
    *,
    laid_out: random.Random | float | None = None,
) -> Snapshot:
    """Write the layout as Parquet (empty files are skipped, as a lake would never write them).

    With ``legacy``, about one file in five lacks the folded numbers, as files
    written before the lake stored them do.  With ``laid_out`` (a generator: half the
    files; 1.0: every file), files are written as the lake writes them: their rows
    become :func:`lake_laid_out` (in ``files`` too, so a reference reads the same rows)
    and the file carries the lake's layout metadata.
    """
    snapshot: dict[date, tuple[str, ...]] = {}
    for day, rows_per_file in sorted(files.items()):
        paths: list[str] = []
        for index, rows in enumerate(rows_per_file):
            if not rows:
                continue
            path = root / f"day={day.isoformat()}" / f"part-{index}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            lake_like = laid_out == 1.0 or (
                isinstance(laid_out, random.Random) and laid_out.random() < 0.5
            )
            if lake_like:
                rows = rows_per_file[index] = lake_laid_out(rows)
            table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
            if legacy is None or legacy.random() >= 0.2:
                table = with_folded_numbers(table)
            if lake_like:
                metadata = {**(table.schema.metadata or {}), LAYOUT_KEY: LAYOUT_VALUE}
                table = table.replace_schema_metadata(metadata)
            pq.write_table(table, path, row_group_size=7)
            paths.append(str(path))
        snapshot[day] = tuple(paths)
    return Snapshot(version=1, files=snapshot)


def day_statement_flags(monkeypatch: pytest.MonkeyPatch, flag: str) -> list[bool]:
    """The ``flag`` keyword (``unique`` or ``ordered``) of every day statement the DuckDB
    engine makes from now on, in order."""
    seen: list[bool] = []
    statement = engine_module.day_statement

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs[flag])
        return statement(*args, **kwargs)

    monkeypatch.setattr(engine_module, "day_statement", spy)
    return seen


def around(
    anchor: datetime, before_days: int, after_days: int, timezone: str = "UTC", **changes: Any
) -> ReportRequest:
    """A request of every direction and record type, from ``before_days`` before ``anchor``
    to ``after_days`` after it (``changes`` set other fields)."""
    values: dict[str, Any] = {
        "start_time": anchor - timedelta(days=before_days),
        "end_time": anchor + timedelta(days=after_days),
        "timezone": timezone,
        "directions": tuple(Direction),
        "record_types": tuple(RecordType),
        **changes,
    }
    return ReportRequest(**values)
