"""UTC offsets of a zone over a span of instants, for engines that format timestamps in bulk.

Engines must write timestamps exactly as ``datetime.isoformat()`` does in the
request's zone, with zone rules from the pinned ``tzdata`` package (api.md
section 5), not from their own time zone database.  A span of a few days has
at most a couple of offset changes, so an engine can turn the few
:class:`OffsetSpan` of a day into a small expression: ``local = utc + offset``
and a fixed suffix (``+01:00``) per span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["OffsetSpan", "iso_suffix", "offset_spans"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000
_SECOND_US = 1_000_000


@dataclass(frozen=True)
class OffsetSpan:
    """From ``start_us`` (epoch microseconds, UTC) until the next span: this offset."""

    start_us: int
    offset_us: int
    suffix: str  # what isoformat() appends, e.g. "-05:00"


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _offset_us(zone: ZoneInfo, us: int) -> int:
    offset = _at(us).astimezone(zone).utcoffset()
    assert offset is not None
    return offset // timedelta(microseconds=1)


def iso_suffix(zone: ZoneInfo, us: int) -> str:
    """The offset part of ``isoformat()`` for the instant ``us`` in ``zone``."""
    local = _at(us).astimezone(zone)
    return local.isoformat()[len(local.replace(tzinfo=None).isoformat()) :]


def _changes(zone: ZoneInfo, low: int, high: int, found: list[int]) -> None:
    """Append to ``found`` every instant in (low, high] where the offset changes.

    Bisects spans whose ends differ; spans longer than a day are split, since
    a zone may change and change back within months (never within a day).
    Transitions fall on whole seconds.
    """
    if high - low > _DAY_US:
        middle = low + (high - low) // 2
        _changes(zone, low, middle, found)
        _changes(zone, middle, high, found)
        return
    if _offset_us(zone, low) == _offset_us(zone, high):
        return
    while high - low > _SECOND_US:
        middle = low + (high - low) // 2
        if _offset_us(zone, middle) == _offset_us(zone, low):
            low = middle
        else:
            high = middle
    # The change happens at the first whole second after ``low`` whose offset differs.
    first = (low // _SECOND_US + 1) * _SECOND_US
    found.append(first if _offset_us(zone, first) != _offset_us(zone, low) else high)


def offset_spans(zone: ZoneInfo, low_us: int, high_us: int) -> list[OffsetSpan]:
    """The spans covering every instant in ``[low_us, high_us]``, in order.

    The first span starts at ``low_us``; an instant belongs to the last span
    whose ``start_us`` is not after it.
    """
    if high_us < low_us:
        high_us = low_us
    found: list[int] = []
    _changes(zone, low_us, high_us, found)
    starts = [low_us, *found]
    return [OffsetSpan(s, _offset_us(zone, s), iso_suffix(zone, s)) for s in starts]
