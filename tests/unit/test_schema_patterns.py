"""The patterns /openapi.json publishes read exactly what the domain reads."""

from __future__ import annotations

import re
from datetime import UTC

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdr_reporting.domain.records import TIMESTAMP
from mdr_reporting.domain.times import (
    INSTANT_PATTERN,
    MAX_YEAR,
    MIN_YEAR,
    RECORD_TIME_PATTERN,
    ZoneNotFound,
    get_zone,
    parse_instant,
    zone_names,
)


def _parses(text: str) -> bool:
    try:
        parse_instant(text, UTC)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def test_the_instant_pattern_and_the_parser_agree_on_every_years_first_and_leap_day() -> None:
    for year in range(MIN_YEAR - 30, MAX_YEAR + 30):
        for day in (f"{year:04d}-01-01", f"{year:04d}-02-29", f"{year:04d}-12-31T23:59:59Z"):
            assert bool(re.fullmatch(INSTANT_PATTERN, day)) == _parses(day), day


@settings(max_examples=300, deadline=None)
@given(st.from_regex(INSTANT_PATTERN, fullmatch=True))
def test_every_instant_the_pattern_allows_parses(text: str) -> None:
    assert _parses(text), text


@settings(max_examples=300, deadline=None)
@given(st.from_regex(RECORD_TIME_PATTERN, fullmatch=True))
def test_every_record_time_the_pattern_allows_converts(text: str) -> None:
    pc.cast(pa.array([text]), TIMESTAMP)


@pytest.mark.parametrize(
    "text", ["2024-02-30T00:00:00Z", "2024-01-01T00:00:00", "2024-01-01T00:00:00.1234567Z"]
)
def test_record_times_the_pattern_refuses_do_not_convert(text: str) -> None:
    assert not re.fullmatch(RECORD_TIME_PATTERN, text)
    with pytest.raises(pa.ArrowInvalid):
        pc.cast(pa.array([text]), TIMESTAMP)


def test_the_zone_list_is_what_get_zone_accepts() -> None:
    names = zone_names()
    assert len(names) > 500 and "America/Chicago" in names and "UTC" in names
    for name in names:
        get_zone(name)
    for name in ("America", "posixrules", "Mars/Olympus"):
        with pytest.raises(ZoneNotFound):
            get_zone(name)
        assert name not in names
