"""Compilation of a validated request into an engine-neutral query description.

Engines translate a :class:`ReportQuery`; they never see request JSON.  The
literal matching rules of api.md section 4 are decided here, once: a number
value and a record's number are compared after :func:`normalise_number` (one
leading ``+`` dropped, then Python's Unicode lower case), every character
literal.  The lake stores each record's folded numbers (``cli_folded``,
``cld_folded``, written by the same function), so an engine compares those
with plain substring/prefix/suffix tests, bound as parameters (no LIKE
patterns, so nothing to escape), and never folds in its own dialect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mdr_reporting.domain.enums import RECORD_TYPE_STATUSES, STATUS_RECORD_TYPE
from mdr_reporting.domain.filters import Filter
from mdr_reporting.domain.records import REPORT_COLUMNS, fold_number
from mdr_reporting.domain.requests import ReportRequest

__all__ = [
    "ALL_DIRECTIONS",
    "ALL_STATUSES",
    "AllOf",
    "AnyOf",
    "NumberMatch",
    "Predicate",
    "ReportQuery",
    "TagMatch",
    "compile_query",
    "normalise_number",
    "record_type_name",
]

Match = Literal["contains", "starts_with", "ends_with"]

_MATCHES: dict[str, Match] = {
    "contains": "contains",
    "starts_with": "starts_with",
    "ends_with": "ends_with",
}
ALL_DIRECTIONS = ("inbound", "outbound")
ALL_STATUSES = tuple(sorted(STATUS_RECORD_TYPE))


normalise_number = fold_number
"""The comparable form of a CLI/CLD or match value (defined once, in ``records``)."""


def record_type_name(status: str) -> str:
    """The report's ``record_type`` column for a message status (api.md sections 6 and 7)."""
    return STATUS_RECORD_TYPE[status].report_name


@dataclass(frozen=True)
class NumberMatch:
    """``normalise_number(record[field])`` contains / starts with / ends with ``value``."""

    field: Literal["cli", "cld"]
    match: Match
    value: str  # already normalised

    def test(self, number: str) -> bool:
        """The rule itself, for engines that evaluate in Python (and for documentation)."""
        subject = normalise_number(number)
        if self.match == "starts_with":
            return subject.startswith(self.value)
        if self.match == "ends_with":
            return subject.endswith(self.value)
        return self.value in subject


@dataclass(frozen=True)
class TagMatch:
    """The record carries at least one of ``tags`` (exact, case-sensitive)."""

    tags: tuple[str, ...]

    def test(self, record_tags: Iterable[str] | None) -> bool:
        return any(tag in self.tags for tag in record_tags or ())


Predicate = NumberMatch | TagMatch


@dataclass(frozen=True)
class AllOf:
    """Conjunction of predicates (one ``and`` run of the filter list)."""

    terms: tuple[Predicate, ...]


@dataclass(frozen=True)
class AnyOf:
    """Disjunction of conjunctions: the whole filter expression of api.md section 4."""

    terms: tuple[AllOf, ...]


@dataclass(frozen=True)
class ReportQuery:
    """Everything an engine needs to build one report file.

    Empty ``connections`` / ``profiles`` mean all; ``where`` is ``None`` without
    filters.  Every criterion applies to the latest version of each message.
    """

    accounts: tuple[str, ...]
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    directions: tuple[str, ...]
    statuses: tuple[str, ...]
    connections: tuple[str, ...]
    profiles: tuple[str, ...]
    where: AnyOf | None
    include_message_body: bool
    timezone: str
    format: str

    @property
    def columns(self) -> tuple[str, ...]:
        """The report's columns in order (api.md section 7)."""
        return (*REPORT_COLUMNS, "message_body") if self.include_message_body else REPORT_COLUMNS

    @property
    def all_directions(self) -> bool:
        return set(self.directions) >= set(ALL_DIRECTIONS)

    @property
    def all_statuses(self) -> bool:
        return set(self.statuses) >= set(ALL_STATUSES)


def _predicate(item: Filter) -> Predicate:
    if item.field == "tags":
        return TagMatch(tuple(dict.fromkeys(item.tags)))
    assert item.value is not None
    match = _MATCHES[item.match or "contains"]
    return NumberMatch(item.field, match, normalise_number(item.value))


def compile_filters(filters: Iterable[Filter]) -> AnyOf | None:
    """Read the list left to right: ``and`` joins the current group, ``or`` opens a new one.

    With the validation of api.md section 4 (no ``and`` after an ``or``) this is
    ``(f1 AND f2 ...) OR fk OR ...``.
    """
    groups: list[list[Predicate]] = []
    for item in filters:
        if item.filter_type == "or" or not groups:
            groups.append([])
        groups[-1].append(_predicate(item))
    if not groups:
        return None
    return AnyOf(tuple(AllOf(tuple(group)) for group in groups))


def compile_query(request: ReportRequest, accounts: Iterable[str]) -> ReportQuery:
    """The query description of ``request`` over the records of ``accounts``."""
    statuses = {s for rt in request.record_types for s in RECORD_TYPE_STATUSES[rt]}
    return ReportQuery(
        accounts=tuple(sorted(set(accounts))),
        start=request.start_time,
        end=request.end_time,
        directions=tuple(sorted({d.wire for d in request.directions})),
        statuses=tuple(sorted(statuses)),
        connections=tuple(sorted(set(request.connections))),
        profiles=tuple(sorted(set(request.profiles))),
        where=compile_filters(request.filters),
        include_message_body=request.include_message_body,
        timezone=request.timezone,
        format=request.format,
    )
