"""Compilation of a validated request into the engine-neutral query description."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.filters import Filter, parse_filters
from mdr_reporting.domain.query import (
    AllOf,
    AnyOf,
    NumberMatch,
    TagMatch,
    compile_filters,
    compile_query,
    normalise_number,
    record_type_name,
)
from mdr_reporting.domain.requests import ReportRequest, parse_v1

NOW = datetime(2024, 3, 1, tzinfo=UTC)


def _request(**changes: object) -> ReportRequest:
    base = ReportRequest(
        start_time=datetime(2024, 2, 1, tzinfo=UTC),
        end_time=datetime(2024, 2, 2, tzinfo=UTC),
        timezone="America/Chicago",
        directions=(Direction.OUTBOUND,),
        record_types=(RecordType.COMPLETE,),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_window_timezone_format_and_body_pass_through() -> None:
    request = _request(include_message_body=True, format="parquet")
    query = compile_query(request, ["acc-2", "acc-1", "acc-2"])
    assert query.accounts == ("acc-1", "acc-2")
    assert (query.start, query.end) == (request.start_time, request.end_time)
    assert query.timezone == "America/Chicago"
    assert query.format == "parquet"
    assert query.columns[-1] == "message_body"
    assert "message_body" not in compile_query(_request(), ["a"]).columns


@pytest.mark.parametrize(
    ("record_types", "statuses"),
    [
        ((RecordType.COMPLETE,), {"delivered", "delivery_unconfirmed", "received"}),
        ((RecordType.INCOMPLETE,), {"queued", "sending", "sent"}),
        ((RecordType.ERRORS,), {"sending_failed", "delivery_failed"}),
        (
            (RecordType.COMPLETE, RecordType.ERRORS),
            {"delivered", "delivery_unconfirmed", "received", "sending_failed", "delivery_failed"},
        ),
    ],
)
def test_record_types_become_status_sets(
    record_types: tuple[RecordType, ...], statuses: set[str]
) -> None:
    query = compile_query(_request(record_types=record_types), ["a"])
    assert set(query.statuses) == statuses
    assert not query.all_statuses


def test_all_record_types_and_directions_are_flagged_as_no_restriction() -> None:
    query = compile_query(
        _request(record_types=tuple(RecordType), directions=tuple(Direction)), ["a"]
    )
    assert query.all_statuses
    assert query.all_directions
    assert query.directions == ("inbound", "outbound")


def test_connection_and_profile_sets_empty_means_all() -> None:
    query = compile_query(_request(), ["a"])
    assert query.connections == ()
    assert query.profiles == ()
    query = compile_query(_request(connections=("2", "1", "2"), profiles=("p",)), ["a"])
    assert query.connections == ("1", "2")
    assert query.profiles == ("p",)


def test_filters_group_left_to_right() -> None:
    raw = [
        {"filter_type": "and", "cli": "+1312", "cli_filter": "starts_with"},
        {"filter_type": "and", "tags_list": ["vip", "vip", "gold"]},
        {"filter_type": "or", "cld": "ABC", "cld_filter": "ends_with"},
        {"filter_type": "or", "tags_list": "solo"},
    ]
    parsed, errors = parse_filters(raw)
    assert errors == []
    assert compile_filters(parsed) == AnyOf(
        (
            AllOf(
                (NumberMatch("cli", "starts_with", "1312"), TagMatch(("vip", "gold"))),
            ),
            AllOf((NumberMatch("cld", "ends_with", "abc"),)),
            AllOf((TagMatch(("solo",)),)),
        )
    )


def test_no_filters_compile_to_none() -> None:
    assert compile_filters(()) is None
    assert compile_query(_request(), ["a"]).where is None


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("+13125550100", "13125550100"),
        ("++1312", "+1312"),
        ("AcmeBank", "acmebank"),
        ("%_'\\*", "%_'\\*"),
        ("+É", "é"),
    ],
)
def test_number_normalisation(raw: str, normalised: str) -> None:
    assert normalise_number(raw) == normalised


@pytest.mark.parametrize(
    ("match", "value", "number", "expected"),
    [
        ("starts_with", "+1312", "13125550100", True),
        ("starts_with", "1312", "+13125550100", True),
        ("starts_with", "+1312", "+13125550100", True),
        ("contains", "acme", "ACMEBANK", True),
        ("contains", "%", "acmebank", False),
        ("contains", "%", "acme%bank", True),
        ("contains", "_", "acmebank", False),
        ("ends_with", "*", "*SALE*", True),
        ("ends_with", "*", "SALE", False),
        ("contains", "'", "O'Neil", True),
        ("contains", "\\", "back\\slash", True),
        ("starts_with", "1312", "++1312", False),
    ],
)
def test_number_match_rules(match: str, value: str, number: str, expected: bool) -> None:
    raw = [{"filter_type": "and", "cli": value, "cli_filter": match}]
    parsed, _ = parse_filters(raw)
    where = compile_filters(parsed)
    assert where is not None
    (predicate,) = where.terms[0].terms
    assert isinstance(predicate, NumberMatch)
    assert predicate.test(number) is expected


def test_tag_match_is_exact_and_case_sensitive() -> None:
    predicate = TagMatch(("vip",))
    assert predicate.test(["x", "vip"])
    assert not predicate.test(["VIP"])
    assert not predicate.test(["vi"])
    assert not predicate.test(None)


def test_record_type_names() -> None:
    assert record_type_name("delivered") == "complete"
    assert record_type_name("sent") == "incomplete"
    assert record_type_name("delivery_failed") == "error"


def test_description_is_immutable_and_hashable() -> None:
    body = {
        "start_time": "2024-02-01T00:00:00Z",
        "end_time": "2024-02-02T00:00:00Z",
        "filters": [{"filter_type": "and", "cli": "1", "cli_filter": "contains"}],
    }
    query = compile_query(parse_v1(body, NOW), ["a"])
    assert hash(query) == hash(compile_query(parse_v1(body, NOW), ["a"]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.accounts = ("b",)  # type: ignore[misc]


def test_filter_objects_from_the_request_survive() -> None:
    request = _request(filters=(Filter("and", "cld", match="contains", value="+44"),))
    where = compile_query(request, ["a"]).where
    assert where == AnyOf((AllOf((NumberMatch("cld", "contains", "44"),)),))
