"""The DuckDB engine against the plain-Python reference, byte for byte, on random data."""

from __future__ import annotations

import csv
import io
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.filters import Filter
from mdr_reporting.domain.query import compile_query
from mdr_reporting.domain.requests import ReportRequest
from mdr_reporting.engines.duckdb import DuckDBEngine
from tests.unit.lake_files import (
    NUMBERS,
    TAGS,
    Record,
    around,
    day_statement_flags,
    layout,
    records,
    transition_anchors,
    write_lake,
)
from tests.unit.reference_report import reference_csv

T = TypeVar("T")
ZONES = (
    "UTC",
    "America/Chicago",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Asia/Kathmandu",
)
LITERALS = (
    *("%", "_", "'", "\\", "*", "%bank", "acme_", "o'n", "k\\s", "*sale", "+%", "É", "ü"),
    *("οδος", "ΟΔΟΣ", "ος", "Σ", "i\u0307stanbul", "İSTANBUL", "İ", "i\u0307", "zmi\u0307r"),
)
ENGINE = DuckDBEngine(memory_limit="256MB", threads=2)
# MDR_TEST_NO_SHRINK=1 reports the first failing example at once (for mutation checks).
PHASES = tuple(p for p in Phase if not (os.environ.get("MDR_TEST_NO_SHRINK") and p == Phase.shrink))


class Case:
    """One randomized case; a plain class so that a failure prints the short repr."""

    def __init__(
        self,
        seed: int,
        layout_rng: random.Random,
        request: ReportRequest,
        accounts: tuple[str, ...],
        messages: list[list[Record]],
    ) -> None:
        self.seed = seed
        self.layout_rng = layout_rng
        self.request = request
        self.accounts = accounts
        self.messages = messages

    def __repr__(self) -> str:
        return (
            f"Case(seed={self.seed}, messages={len(self.messages)}, "
            f"accounts={self.accounts}, request={self.request})"
        )


def number_value(rng: random.Random, match: str) -> str:
    """A match value likely to hit: the part of a stored number that ``match`` looks at.

    It is cut from the number without its '+', then shown in any case, with or
    without a '+' of its own; or it is a tricky literal.
    """
    if rng.random() < 0.75:
        number = rng.choice([n for n in NUMBERS if n.strip("+")]).removeprefix("+")
        size = rng.randint(1, min(len(number), 4))
        if match == "starts_with":
            value = number[:size]
        elif match == "ends_with":
            value = number[-size:]
        else:
            start = rng.randint(0, len(number) - size)
            value = number[start : start + size]
    else:
        value = rng.choice(LITERALS)
    if rng.random() < 0.5:
        value = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in value)
    if rng.random() < 0.5:
        value = "+" + value
    return value


def filters(rng: random.Random) -> tuple[Filter, ...]:
    """Zero to four filters: a run of ``and`` then ``or`` ones, as section 4 allows."""
    count = rng.choices(range(5), weights=(20, 40, 25, 10, 5))[0]
    ands = rng.randint(1, max(count, 1))
    out = []
    for index in range(count):
        kind = "and" if index < ands else "or"
        field = rng.choice(["cli", "cld", "tags"])
        if field == "tags":
            tags = rng.sample(TAGS, rng.randint(1, 3))
            out.append(Filter(kind, "tags", tags=tuple(tags)))
        else:
            match = rng.choice(["contains", "starts_with", "ends_with"])
            out.append(Filter(kind, field, match=match, value=number_value(rng, match)))
    return tuple(out)


def _window(
    rng: random.Random, rows: list[datetime], anchor: datetime
) -> tuple[datetime, datetime]:
    """Half the time the whole lake; else ends on stored created_at values (both window ends)."""
    if rng.random() < 0.5 or len(rows) < 2:
        return anchor - timedelta(days=3), anchor + timedelta(days=3)
    first, last = sorted(rng.sample(range(len(rows)), min(2, len(rows))))
    start = rows[first] if rng.random() < 0.8 else anchor - timedelta(days=3)
    end = rows[last] if rng.random() < 0.8 and last != first else anchor + timedelta(days=3)
    return start, end


def _some_or_all(rng: random.Random, values: tuple[T, ...]) -> tuple[T, ...]:
    """Mostly every value (no restriction), else a non-empty subset."""
    if rng.random() < 0.6:
        return values
    return tuple(rng.sample(values, rng.randint(1, len(values))))


def _restriction(rng: random.Random, values: tuple[str, ...]) -> tuple[str, ...]:
    """Usually empty (all), sometimes a few ids, maybe unknown ones."""
    if rng.random() < 0.8:
        return ()
    return tuple(rng.sample(values, rng.randint(1, 2)))


def make_case(seed: int, anchor: datetime, zone: str) -> Case:
    """The case a seed, an anchor and a zone make (a seeded generator makes the rest)."""
    rng = random.Random(seed)
    messages = records(rng, anchor, 0 if rng.random() < 0.03 else rng.randint(1, 150))
    created = sorted({versions[0]["created_at"] for versions in messages})
    start, end = _window(rng, created, anchor)
    request = ReportRequest(
        start_time=start,
        end_time=end,
        timezone=zone,
        directions=_some_or_all(rng, tuple(Direction)),
        record_types=_some_or_all(rng, tuple(RecordType)),
        connections=_restriction(rng, ("1001", "1002", "conn-x", "9")),
        profiles=_restriction(rng, ("prof-a", "prof-b", "x")),
        filters=filters(rng),
        include_message_body=rng.random() < 0.5,
    )
    accounts = _some_or_all(rng, ("acc-1", "acc-2", "acc-3", "acc-9"))
    return Case(seed, random.Random(rng.random()), request, accounts, messages)


def seeded_cases(count: int, seed: int) -> list[Case]:
    """``count`` cases without Hypothesis, for engines that build many reports per job."""
    rng = random.Random(seed)
    anchors = transition_anchors()
    return [
        make_case(rng.randrange(2**64), rng.choice(anchors), rng.choice(ZONES))
        for _ in range(count)
    ]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Hypothesis picks the seed, zone and anchor; a seeded generator makes the rest."""
    seed = draw(st.integers(0, 2**64))
    anchor = draw(st.sampled_from(transition_anchors()))
    return make_case(seed, anchor, draw(st.sampled_from(ZONES)))


@settings(
    max_examples=220,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_engine_csv_equals_reference(case: Case) -> None:
    request, accounts = case.request, case.accounts
    files = layout(case.layout_rng, case.messages)
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        snapshot = write_lake(
            root / "lake",
            files,
            legacy=random.Random(case.seed),
            laid_out=random.Random(case.seed + 1),
        )
        query = compile_query(request, accounts)
        result = ENGINE.build(query, snapshot, root / "report.csv")
        produced = (root / "report.csv").read_bytes()
    expected = reference_csv(request, accounts, files)
    assert produced.decode() == expected.decode()
    assert result.rows == len(list(csv.reader(io.StringIO(expected.decode(), newline="")))) - 1
    assert result.size_bytes == len(produced)


@settings(
    max_examples=60,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases(), st.integers(1, 2), st.sampled_from([(), ("acc-0",), ("acc-9",)]))
def test_laid_out_days_equal_reference(
    case: Case, most_files: int, absent: tuple[str, ...]
) -> None:
    """Days of one file the lake laid out skip the latest-version pass, and one account's
    rows skip the sort too (engines/duckdb.py), also beside accounts that hold no record
    (``absent``: before and after the data's accounts): still the reference's bytes."""
    request, accounts = case.request, case.accounts[:1] + absent
    files = layout(case.layout_rng, case.messages, most_files=most_files)
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        snapshot = write_lake(root / "lake", files, laid_out=1.0)
        result = ENGINE.build(compile_query(request, accounts), snapshot, root / "report.csv")
        produced = (root / "report.csv").read_bytes()
    expected = reference_csv(request, accounts, files)
    assert produced.decode() == expected.decode()
    assert result.size_bytes == len(produced)


def test_reference_agrees_on_a_fixed_case(tmp_path: Path) -> None:
    """A readable anchor for the randomized test: one DST-crossing day in Chicago."""
    rng = random.Random(7)
    anchor = datetime(2024, 3, 10, 8, 0, tzinfo=UTC)
    messages = records(rng, anchor, 200)
    files = layout(rng, messages)
    snapshot = write_lake(tmp_path / "lake", files)
    request = around(anchor, 2, 2, "America/Chicago")
    accounts = ("acc-1", "acc-2")
    result = ENGINE.build(compile_query(request, accounts), snapshot, tmp_path / "r.csv")
    produced = (tmp_path / "r.csv").read_bytes()
    assert produced == reference_csv(request, accounts, files)
    assert result.rows > 50
    assert b"-06:00" in produced
    assert b"-05:00" in produced


@pytest.mark.parametrize("versions", [1, 3])
@pytest.mark.parametrize("laid_out", [1.0, None])
def test_days_of_several_files_skip_the_latest_version_pass_when_no_id_repeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versions: int, laid_out: float | None
) -> None:
    """A day of several files (appends not yet merged) whose ids occur once is read without
    the latest-version pass (one probe of its ids tells), in the reference's bytes; with
    repeated ids the pass runs."""
    seen = day_statement_flags(monkeypatch, "unique")
    rng = random.Random(11)
    anchor = datetime(2024, 11, 3, 6, 0, tzinfo=UTC)  # a day that ends DST in Chicago
    messages = [v[:versions] for v in records(rng, anchor, 400)]
    files = layout(rng, messages, most_files=3)
    snapshot = write_lake(tmp_path / "lake", files, laid_out=laid_out)
    request = around(anchor, 3, 3, "America/Chicago")
    accounts = ("acc-1", "acc-3")
    ENGINE.build(compile_query(request, accounts), snapshot, tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_bytes() == reference_csv(request, accounts, files)
    several = [day for day, paths in snapshot.files.items() if len(paths) > 1]
    assert several  # the layout spread some days over several files
    if versions == 1:
        assert all(seen)
    else:
        assert not all(seen)
