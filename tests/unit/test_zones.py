"""Offset spans of a zone: where engines get each row's offset from."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mdr_reporting.domain.times import get_zone
from mdr_reporting.domain.zones import OffsetSpan, offset_spans

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(microseconds=1)


def test_a_day_without_change_is_one_span() -> None:
    low, high = us(datetime(2024, 6, 1, tzinfo=UTC)), us(datetime(2024, 6, 2, tzinfo=UTC))
    assert offset_spans(get_zone("America/Chicago"), low, high) == [
        OffsetSpan(low, -5 * 3600 * 10**6, "-05:00")
    ]


def test_changes_are_found_to_the_second() -> None:
    zone = get_zone("Australia/Lord_Howe")
    low, high = us(datetime(2024, 4, 5, tzinfo=UTC)), us(datetime(2024, 10, 8, tzinfo=UTC))
    spans = offset_spans(zone, low, high)
    assert [(s.start_us, s.suffix) for s in spans] == [
        (low, "+11:00"),
        (us(datetime(2024, 4, 6, 15, 0, tzinfo=UTC)), "+10:30"),
        (us(datetime(2024, 10, 5, 15, 30, tzinfo=UTC)), "+11:00"),
    ]


def test_offsets_with_seconds_are_written_as_isoformat_writes_them() -> None:
    zone = get_zone("America/Chicago")
    instant = us(datetime(1880, 1, 1, tzinfo=UTC))
    (span,) = offset_spans(zone, instant, instant)
    assert span.suffix == "-05:50:36"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["America/Chicago", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu"]),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1)),
    st.integers(0, 5 * 86_400_000_000),
    st.integers(0, 10**6),
)
def test_every_instant_in_range_gets_its_own_offset(
    name: str, start: datetime, width: int, probe: int
) -> None:
    zone = get_zone(name)
    low = us(start.replace(tzinfo=UTC))
    high = low + width
    spans = offset_spans(zone, low, high)
    instant = low + width * probe // 10**6
    span = [s for s in spans if s.start_us <= instant][-1]
    local = (EPOCH + timedelta(microseconds=instant)).astimezone(zone)
    assert span.offset_us == local.utcoffset() // timedelta(microseconds=1)
    assert local.isoformat().endswith(span.suffix)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(
        ["America/Chicago", "Europe/London", "Australia/Lord_Howe", "America/St_Johns"]
    ),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1)),
)
def test_each_span_starts_exactly_at_a_change(name: str, start: datetime) -> None:
    zone = get_zone(name)
    low = us(start.replace(tzinfo=UTC))
    spans = offset_spans(zone, low, low + 400 * 86_400_000_000)
    assert len(spans) >= 2  # these zones change at least once a year
    for before, span in itertools.pairwise(spans):
        just_before = (EPOCH + timedelta(microseconds=span.start_us - 1)).astimezone(zone)
        at = (EPOCH + timedelta(microseconds=span.start_us)).astimezone(zone)
        assert just_before.utcoffset() // timedelta(microseconds=1) == before.offset_us
        assert at.utcoffset() // timedelta(microseconds=1) == span.offset_us != before.offset_us
