"""The DuckDB engine against the plain-Python reference, byte for byte, on random data."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lake_files import NUMBERS, TAGS, Record, layout, records, transition_anchors, write_lake
from reference_report import reference_csv

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.filters import Filter
from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines.duckdb import DuckDBEngine

ZONES = (
    "UTC",
    "America/Chicago",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Asia/Kathmandu",
)
LITERALS = ("%", "_", "'", "\\", "*", "%bank", "acme_", "o'n", "k\\s", "*sale", "+%", "É", "ü")
ENGINE = DuckDBEngine(memory_limit="256MB", threads=2)


@dataclass
class Case:
    layout_rng: random.Random
    request: ReportRequest
    accounts: tuple[str, ...]
    messages: list[list[Record]]


@st.composite
def number_values(draw: st.DrawFn, match: str) -> str:
    """A match value likely to hit: the part of a stored number that ``match`` looks at.

    It is cut from the number without its '+', then shown in any case, with or
    without a '+' of its own; or it is a tricky literal.
    """
    if draw(st.integers(0, 3)) > 0:
        number = draw(st.sampled_from([n for n in NUMBERS if n.strip("+")])).removeprefix("+")
        size = draw(st.integers(1, len(number)))
        if match == "starts_with":
            value = number[:size]
        elif match == "ends_with":
            value = number[-size:]
        else:
            start = draw(st.integers(0, len(number) - size))
            value = number[start : start + size]
    else:
        value = draw(st.sampled_from(LITERALS))
    if draw(st.booleans()):
        value = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in value)
    if draw(st.booleans()):
        value = "+" + value
    return value


@st.composite
def filters(draw: st.DrawFn) -> tuple[Filter, ...]:
    count = draw(st.integers(0, 4))
    ands = draw(st.integers(1, max(count, 1)))
    out = []
    for index in range(count):
        kind = "and" if index < ands else "or"
        field = draw(st.sampled_from(["cli", "cld", "tags"]))
        if field == "tags":
            tags = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=3, unique=True))
            out.append(Filter(kind, "tags", tags=tuple(tags)))
        else:
            match = draw(st.sampled_from(["contains", "starts_with", "ends_with"]))
            out.append(Filter(kind, field, match=match, value=draw(number_values(match))))
    return tuple(out)


def _window(draw: st.DrawFn, rows: list[datetime], anchor: datetime) -> tuple[datetime, datetime]:
    """Often exactly on stored created_at values, to test both window ends."""
    choices = [*rows, anchor, anchor - timedelta(days=2), anchor + timedelta(days=2)]
    start = draw(st.sampled_from(choices))
    later = [t for t in choices if t > start] or [start + timedelta(hours=1)]
    end = draw(st.sampled_from(later))
    if draw(st.integers(0, 4)) == 0:
        start, end = anchor - timedelta(days=3), anchor + timedelta(days=3)
    return start, end


@st.composite
def cases(draw: st.DrawFn) -> Case:
    rng = draw(st.randoms(use_true_random=False))
    anchor = draw(st.sampled_from(transition_anchors()))
    messages = records(rng, anchor, draw(st.integers(0, 120)))
    created = sorted({versions[0]["created_at"] for versions in messages})
    start, end = _window(draw, created, anchor)
    request = ReportRequest(
        start_time=start,
        end_time=end,
        timezone=draw(st.sampled_from(ZONES)),
        directions=tuple(
            draw(st.lists(st.sampled_from(list(Direction)), min_size=1, max_size=2, unique=True))
        ),
        record_types=tuple(
            draw(st.lists(st.sampled_from(list(RecordType)), min_size=1, max_size=3, unique=True))
        ),
        connections=tuple(
            draw(st.lists(st.sampled_from(["1001", "1002", "conn-x", "9"]), max_size=2))
        ),
        profiles=tuple(draw(st.lists(st.sampled_from(["prof-a", "prof-b", "x"]), max_size=2))),
        filters=draw(filters()),
        include_message_body=draw(st.booleans()),
    )
    accounts = tuple(
        draw(st.lists(st.sampled_from(["acc-1", "acc-2", "acc-3", "acc-9"]), min_size=1))
    )
    return Case(random.Random(rng.random()), request, accounts, messages)


@settings(
    max_examples=220,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_engine_csv_equals_reference(case: Case) -> None:
    request, accounts = case.request, case.accounts
    files = layout(case.layout_rng, case.messages)
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        snapshot = write_lake(root / "lake", files)
        query = compile_query(request, accounts)
        result = ENGINE.build(query, snapshot, root / "report.csv")
        produced = (root / "report.csv").read_bytes()
    expected = reference_csv(request, accounts, files)
    assert produced.decode() == expected.decode()
    assert result.rows == len(list(csv.reader(io.StringIO(expected.decode(), newline="")))) - 1
    assert result.size_bytes == len(produced)


def test_reference_agrees_on_a_fixed_case(tmp_path: Path) -> None:
    """A readable anchor for the randomized test: one DST-crossing day in Chicago."""
    rng = random.Random(7)
    anchor = datetime(2024, 3, 10, 8, 0, tzinfo=UTC)
    messages = records(rng, anchor, 200)
    files = layout(rng, messages)
    snapshot = write_lake(tmp_path / "lake", files)
    request = ReportRequest(
        start_time=anchor - timedelta(days=2),
        end_time=anchor + timedelta(days=2),
        timezone="America/Chicago",
        directions=tuple(Direction),
        record_types=tuple(RecordType),
    )
    accounts = ("acc-1", "acc-2")
    result = ENGINE.build(compile_query(request, accounts), snapshot, tmp_path / "r.csv")
    produced = (tmp_path / "r.csv").read_bytes()
    assert produced == reference_csv(request, accounts, files)
    assert result.rows > 50
    assert b"-06:00" in produced
    assert b"-05:00" in produced
