"""Every validation rule of api.md sections 2, 4 and 11, one case each (domain layer)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mdr_reporting.domain.enums import Direction, RecordType
from mdr_reporting.domain.errors import InvalidInput
from mdr_reporting.domain.requests import RECENT_DATA_WARNING, parse_v1, parse_v2, warnings_for

NOW = datetime(2024, 2, 22, 15, 46, 52, 123456, tzinfo=UTC)
START = "2024-02-21T00:00:00Z"


def v1(**fields: Any) -> dict[str, Any]:
    return {"start_time": START, **fields}


def problems(body: Any, parse: Any = parse_v1) -> list[tuple[str | None, str]]:
    with pytest.raises(InvalidInput) as caught:
        parse(body, NOW)
    return [(item.pointer, item.detail) for item in caught.value.items]


def pointers(body: Any, parse: Any = parse_v1) -> list[str | None]:
    return [pointer for pointer, _ in problems(body, parse)]


AND_CLI = {"filter_type": "and", "cli": "+1312", "cli_filter": "starts_with"}
OR_TAGS = {"filter_type": "or", "tags_list": ["campaign-7"]}

# (name, body, the pointer the 400 must carry)
INVALID_V1: list[tuple[str, Any, str]] = [
    ("body is not an object", ["start_time"], ""),
    ("start_time missing", {}, "/start_time"),
    ("start_time not ISO 8601", v1(start_time="yesterday"), "/start_time"),
    ("start_time not a string", v1(start_time=1708560000), "/start_time"),
    ("end_time not ISO 8601", v1(end_time="2024-02-31T00:00:00Z"), "/end_time"),
    ("end_time equal to start_time", v1(end_time=START), "/end_time"),
    ("end_time before start_time", v1(end_time="2024-02-20T00:00:00Z"), "/end_time"),
    ("start_time after the default end", v1(start_time="2030-01-01T00:00:00Z"), "/start_time"),
    ("unknown timezone", v1(timezone="Mars/Olympus_Mons"), "/timezone"),
    ("timezone path trick", v1(timezone="../../etc/passwd"), "/timezone"),
    ("timezone not a string", v1(timezone=5), "/timezone"),
    ("call_types value out of range", v1(call_types=[3]), "/call_types/0"),
    ("call_types not a list", v1(call_types=1), "/call_types"),
    ("call_types boolean item", v1(call_types=[True]), "/call_types/0"),
    ("directions unknown value", v1(directions=["sideways"]), "/directions/0"),
    ("directions not a list", v1(directions="inbound"), "/directions"),
    (
        "call_types and directions disagree",
        v1(call_types=[1], directions=["outbound"]),
        "/call_types",
    ),
    ("record_types empty", v1(record_types=[]), "/record_types"),
    ("record_types value out of range", v1(record_types=[4]), "/record_types/0"),
    ("record_types string item", v1(record_types=["1"]), "/record_types/0"),
    ("connections object item", v1(connections=[{"id": 1}]), "/connections/0"),
    ("connections empty string", v1(connections=[""]), "/connections/0"),
    ("profiles integer item", v1(profiles=[5]), "/profiles/0"),
    ("report_name empty", v1(report_name=""), "/report_name"),
    ("report_name too long", v1(report_name="x" * 256), "/report_name"),
    ("unknown top-level field", v1(record_type=1), "/record_type"),
    ("include_message_body not boolean", v1(include_message_body="yes"), "/include_message_body"),
    ("unknown format", v1(format="xlsx"), "/format"),
    ("webhook_url not http", v1(webhook_url="ftp://example.com/x"), "/webhook_url"),
    ("managed_accounts not a list", v1(managed_accounts="acct-b"), "/managed_accounts"),
    (
        "select_all_managed_accounts not boolean",
        v1(select_all_managed_accounts=1),
        "/select_all_managed_accounts",
    ),
    ("filters not a list", v1(filters={"filter_type": "and"}), "/filters"),
    ("filter string that is not JSON", v1(filters=["{not json"]), "/filters/0"),
    ("filter that is a number", v1(filters=[5]), "/filters/0"),
    ("first filter is or", v1(filters=[OR_TAGS]), "/filters/0/filter_type"),
    ("and after or", v1(filters=[AND_CLI, OR_TAGS, AND_CLI]), "/filters/2/filter_type"),
    (
        "filter_type missing",
        v1(filters=[{"cli": "1", "cli_filter": "contains"}]),
        "/filters/0/filter_type",
    ),
    (
        "filter_type unknown",
        v1(filters=[{**AND_CLI, "filter_type": "xor"}]),
        "/filters/0/filter_type",
    ),
    (
        "two criteria in one filter",
        v1(filters=[{**AND_CLI, "tags_list": ["a"]}]),
        "/filters/0/tags_list",
    ),
    ("no criterion", v1(filters=[{"filter_type": "and"}]), "/filters/0"),
    (
        "cli without cli_filter",
        v1(filters=[{"filter_type": "and", "cli": "1312"}]),
        "/filters/0/cli_filter",
    ),
    (
        "cld without cld_filter",
        v1(filters=[{"filter_type": "and", "cld": "555"}]),
        "/filters/0/cld_filter",
    ),
    (
        "cli_filter without cli",
        v1(filters=[{"filter_type": "and", "cli_filter": "contains", "tags_list": ["a"]}]),
        "/filters/0/cli_filter",
    ),
    (
        "cli_filter unknown",
        v1(filters=[{**AND_CLI, "cli_filter": "equals"}]),
        "/filters/0/cli_filter",
    ),
    ("cli value empty", v1(filters=[{**AND_CLI, "cli": ""}]), "/filters/0/cli"),
    ("cli value only a plus", v1(filters=[{**AND_CLI, "cli": "+"}]), "/filters/0/cli"),
    ("cli value not a string", v1(filters=[{**AND_CLI, "cli": 1312}]), "/filters/0/cli"),
    (
        "tags_list empty",
        v1(filters=[{"filter_type": "and", "tags_list": []}]),
        "/filters/0/tags_list",
    ),
    (
        "tags_list with an empty tag",
        v1(filters=[{"filter_type": "and", "tags_list": ["a", ""]}]),
        "/filters/0/tags_list/1",
    ),
    (
        "unknown key in a filter",
        v1(filters=[{**AND_CLI, "cli_match": "x"}]),
        "/filters/0/cli_match",
    ),
]


@pytest.mark.parametrize(("name", "body", "pointer"), INVALID_V1, ids=[c[0] for c in INVALID_V1])
def test_v1_rule_rejects_with_pointer(name: str, body: Any, pointer: str) -> None:
    assert pointer in pointers(body), name


def test_every_problem_is_reported_at_once() -> None:
    found = pointers({"start_time": "x", "record_types": [], "bogus": 1, "format": "doc"})
    assert {"/start_time", "/record_types", "/bogus", "/format"} <= set(found)


def test_unknown_field_is_named_in_detail() -> None:
    assert ("/record_type", "unknown field 'record_type'") in problems(v1(record_type=1))


def test_naive_times_are_read_in_timezone() -> None:
    spec = parse_v1(
        v1(
            start_time="2024-02-21T00:00:00",
            end_time="2024-02-22T00:00:00",
            timezone="America/Chicago",
        ),
        NOW,
    )
    assert spec.start_time == datetime(2024, 2, 21, 6, tzinfo=UTC)
    assert spec.end_time == datetime(2024, 2, 22, 6, tzinfo=UTC)


def test_times_with_offset_are_absolute_whatever_the_timezone() -> None:
    spec = parse_v1(v1(start_time="2024-02-21T00:00:00+02:00", timezone="America/Chicago"), NOW)
    assert spec.start_time == datetime(2024, 2, 20, 22, tzinfo=UTC)


def test_naive_time_in_dst_gap_resolves_like_zoneinfo_fold_0() -> None:
    # 2024-03-10 02:30 does not exist in Chicago; zoneinfo with fold=0 reads it as CST (-06:00).
    spec = parse_v1(
        v1(
            start_time="2024-03-10T02:30:00",
            end_time="2024-03-11T00:00:00",
            timezone="America/Chicago",
        ),
        NOW.replace(year=2025),
    )
    assert spec.start_time == datetime(2024, 3, 10, 8, 30, tzinfo=UTC)


def test_naive_time_in_dst_overlap_takes_the_first_occurrence() -> None:
    spec = parse_v1(
        v1(
            start_time="2024-11-03T01:30:00",
            end_time="2024-11-04T00:00:00",
            timezone="America/Chicago",
        ),
        NOW.replace(year=2025),
    )
    assert spec.start_time == datetime(2024, 11, 3, 6, 30, tzinfo=UTC)  # CDT, -05:00


def test_defaults() -> None:
    spec = parse_v1(v1(), NOW)
    assert spec.end_time == NOW.replace(microsecond=0)
    assert spec.timezone == "UTC"
    assert spec.directions == (Direction.INBOUND, Direction.OUTBOUND)
    assert spec.record_types == (RecordType.COMPLETE,)
    assert spec.connections == () and spec.profiles == () and spec.filters == ()
    assert spec.report_name == "mdr_2024-02-21T00:00:00+00:00_2024-02-22T15:46:52+00:00"
    assert spec.format == "csv" and spec.include_message_body is False


def test_default_report_name_uses_the_request_timezone() -> None:
    spec = parse_v1(v1(end_time="2024-02-22T00:00:00Z", timezone="America/Chicago"), NOW)
    assert spec.report_name == "mdr_2024-02-20T18:00:00-06:00_2024-02-21T18:00:00-06:00"


def test_directions_are_case_insensitive_and_decide() -> None:
    spec = parse_v1(v1(directions=["OutBound"]), NOW)
    assert spec.directions == (Direction.OUTBOUND,)


def test_call_types_decide_when_directions_empty() -> None:
    assert parse_v1(v1(call_types=[1], directions=[]), NOW).directions == (Direction.INBOUND,)


def test_call_types_and_directions_agreeing_is_fine() -> None:
    spec = parse_v1(v1(call_types=[2, 1], directions=["inbound", "outbound"]), NOW)
    assert spec.directions == (Direction.INBOUND, Direction.OUTBOUND)


def test_no_direction_given_means_all() -> None:
    spec = parse_v1(v1(call_types=[], directions=[]), NOW)
    assert spec.directions == (Direction.INBOUND, Direction.OUTBOUND)


def test_record_types_omitted_means_complete_only() -> None:
    assert parse_v1(v1(), NOW).record_types == (RecordType.COMPLETE,)
    assert parse_v1(v1(record_types=[3, 1, 3]), NOW).record_types == (
        RecordType.COMPLETE,
        RecordType.ERRORS,
    )


def test_integer_connections_are_read_as_decimal_strings() -> None:
    assert parse_v1(v1(connections=[1234, "abc", 1234]), NOW).connections == ("1234", "abc")


def test_filters_as_json_strings_equal_filters_as_objects() -> None:
    as_objects = parse_v1(v1(filters=[AND_CLI, OR_TAGS]), NOW)
    as_strings = parse_v1(v1(filters=[json.dumps(AND_CLI), json.dumps(OR_TAGS)]), NOW)
    assert as_objects == as_strings


def test_single_tag_string_is_a_one_item_list() -> None:
    spec = parse_v1(v1(filters=[{"filter_type": "and", "tags_list": "campaign-7"}]), NOW)
    assert spec.filters[0].tags == ("campaign-7",)


def test_filters_normalised_json() -> None:
    spec = parse_v1(
        v1(filters=[{"cli_filter": "STARTS_WITH", "cli": "+1312", "filter_type": "AND"}, OR_TAGS]),
        NOW,
    )
    assert json.loads(spec.filters_json()) == [
        {"filter_type": "and", "cli": "+1312", "cli_filter": "starts_with"},
        {"filter_type": "or", "tags_list": ["campaign-7"]},
    ]


def test_or_after_and_is_allowed() -> None:
    spec = parse_v1(v1(filters=[AND_CLI, AND_CLI, OR_TAGS, OR_TAGS]), NOW)
    assert [f.filter_type for f in spec.filters] == ["and", "and", "or", "or"]


def test_recent_window_warning() -> None:
    recent = parse_v1(v1(), NOW)
    old = parse_v1(v1(end_time="2024-02-22T00:00:00Z"), NOW)
    assert warnings_for(recent, NOW) == (RECENT_DATA_WARNING,)
    assert warnings_for(old, NOW) == ()


# -- v2 legacy --------------------------------------------------------------------------


def v2(**fields: Any) -> dict[str, Any]:
    return {"start_time": START, "end_time": "2024-02-22T00:00:00Z", **fields}


def test_v2_requires_both_times() -> None:
    assert "/end_time" in pointers({"start_time": START}, parse_v2)
    assert "/start_time" in pointers({"end_time": START}, parse_v2)


def test_v2_ignores_unknown_fields() -> None:
    assert parse_v2(v2(record_type="x", anything=[1]), NOW).report_name


def test_v2_directions_are_integers() -> None:
    assert parse_v2(v2(directions=[2]), NOW).directions == (Direction.OUTBOUND,)
    assert "/directions/0" in pointers(v2(directions=["outbound"]), parse_v2)


def test_v2_record_types_empty_is_rejected() -> None:
    assert "/record_types" in pointers(v2(record_types=[]), parse_v2)


def test_v2_filters_follow_the_same_grammar() -> None:
    assert "/filters/0/filter_type" in pointers(v2(filters=[OR_TAGS]), parse_v2)
    spec = parse_v2(v2(filters=[{"filter_type": "and", "tags_list": "t"}]), NOW)
    assert spec.filters[0].tags == ("t",)


def test_v2_integer_connections() -> None:
    assert parse_v2(v2(connections=[42]), NOW).connections == ("42",)
