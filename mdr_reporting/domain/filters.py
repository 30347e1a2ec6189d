"""The filter grammar of api.md section 4: parsing, validation and normalised forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from mdr_reporting.domain.errors import ErrorItem
from mdr_reporting.domain.limits import MAX_FILTERS, MAX_TAGS_PER_FILTER, MAX_TEXT_LENGTH

__all__ = ["MATCHES", "Filter", "parse_filters"]

MATCHES = ("contains", "starts_with", "ends_with")
# A filter sent as a JSON-encoded string: room for the longest valid one, no more.
_MAX_FILTER_TEXT = 4 * MAX_TEXT_LENGTH * (MAX_TAGS_PER_FILTER + 1)
_KEYS = ("filter_type", "cli", "cli_filter", "cld", "cld_filter", "tags_list")

FilterField = Literal["cli", "cld", "tags"]


@dataclass(frozen=True)
class Filter:
    """One criterion: a number match (``cli``/``cld``) or a tag set, joined by ``and``/``or``."""

    filter_type: Literal["and", "or"]
    field: FilterField
    match: str | None = None  # contains / starts_with / ends_with for cli and cld
    value: str | None = None
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The normalised object: ``filter_type`` first, then the one criterion."""
        if self.field == "tags":
            return {"filter_type": self.filter_type, "tags_list": list(self.tags)}
        return {
            "filter_type": self.filter_type,
            self.field: self.value,
            f"{self.field}_filter": self.match,
        }


def _invalid(pointer: str, detail: str) -> ErrorItem:
    return ErrorItem("invalid_filter", "Invalid filter", detail, pointer=pointer)


def parse_filters(
    raw: Any, pointer: str = "/filters"
) -> tuple[tuple[Filter, ...], list[ErrorItem]]:
    """Validate ``filters`` (objects or JSON-encoded strings of objects)."""
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), [_invalid(pointer, "filters must be a list of filter objects")]
    if len(raw) > MAX_FILTERS:
        return (), [
            _invalid(pointer, f"filters may hold at most {MAX_FILTERS} filters, got {len(raw)}")
        ]
    filters: list[Filter] = []
    errors: list[ErrorItem] = []
    seen_or = False
    for index, item in enumerate(raw):
        here = f"{pointer}/{index}"
        if isinstance(item, str):
            if len(item) > _MAX_FILTER_TEXT:
                errors.append(_invalid(here, "a filter given as a string is too long"))
                continue
            try:  # orjson: a string nested thousands of arrays deep is an error, not a crash
                item = orjson.loads(item)
            except orjson.JSONDecodeError:
                errors.append(_invalid(here, "a filter given as a string must be a JSON object"))
                continue
        if not isinstance(item, dict):
            errors.append(_invalid(here, "a filter must be an object"))
            continue
        parsed, problems = _parse_one(item, here)
        if problems:
            errors.extend(problems)
            continue
        assert parsed is not None
        if index == 0 and parsed.filter_type != "and":
            errors.append(
                _invalid(f"{here}/filter_type", "the first filter's filter_type must be 'and'")
            )
            continue
        if parsed.filter_type == "and" and seen_or:
            errors.append(
                _invalid(f"{here}/filter_type", "an 'and' filter may not follow an 'or' filter")
            )
            continue
        seen_or = seen_or or parsed.filter_type == "or"
        filters.append(parsed)
    return tuple(filters), errors


def _parse_one(item: dict[str, Any], here: str) -> tuple[Filter | None, list[ErrorItem]]:
    errors: list[ErrorItem] = []
    for key in item:
        if key not in _KEYS:
            errors.append(_invalid(f"{here}/{key}", f"unknown filter field '{key}'"))
    filter_type = item.get("filter_type")
    if filter_type is None:
        errors.append(_invalid(f"{here}/filter_type", "filter_type is required ('and' or 'or')"))
    elif not isinstance(filter_type, str) or filter_type.lower() not in ("and", "or"):
        errors.append(_invalid(f"{here}/filter_type", "filter_type must be 'and' or 'or'"))

    criteria = [key for key in ("cli", "cld", "tags_list") if key in item]
    if not criteria:
        errors.append(_invalid(here, "a filter needs exactly one criterion: cli, cld or tags_list"))
    elif len(criteria) > 1:
        errors.append(
            _invalid(
                f"{here}/{criteria[1]}",
                f"a filter takes exactly one criterion, got {' and '.join(criteria)}",
            )
        )
    for number in ("cli", "cld"):
        if f"{number}_filter" in item and number not in item:
            errors.append(
                _invalid(f"{here}/{number}_filter", f"{number}_filter is given without {number}")
            )
    if errors:
        return None, errors

    kind: Literal["and", "or"] = "and" if str(filter_type).lower() == "and" else "or"
    criterion = criteria[0]
    if criterion == "tags_list":
        tags = item["tags_list"]
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list) or not tags:
            return None, [
                _invalid(f"{here}/tags_list", "tags_list must be a non-empty list of tags")
            ]
        if len(tags) > MAX_TAGS_PER_FILTER:
            return None, [
                _invalid(
                    f"{here}/tags_list",
                    f"tags_list may hold at most {MAX_TAGS_PER_FILTER} tags, got {len(tags)}",
                )
            ]
        for position, tag in enumerate(tags):
            if not isinstance(tag, str) or not tag or len(tag) > MAX_TEXT_LENGTH:
                return None, [
                    _invalid(
                        f"{here}/tags_list/{position}",
                        f"a tag must be a string of 1 to {MAX_TEXT_LENGTH} characters",
                    )
                ]
        return Filter(kind, "tags", tags=tuple(dict.fromkeys(tags))), []

    value = item[criterion]
    match = item.get(f"{criterion}_filter")
    if not isinstance(value, str) or not value.removeprefix("+"):
        errors.append(
            _invalid(f"{here}/{criterion}", f"{criterion} must be a non-empty string of characters")
        )
    elif len(value) > MAX_TEXT_LENGTH:
        errors.append(
            _invalid(
                f"{here}/{criterion}", f"{criterion} may be at most {MAX_TEXT_LENGTH} characters"
            )
        )
    if match is None:
        errors.append(
            _invalid(
                f"{here}/{criterion}_filter",
                f"{criterion} needs {criterion}_filter: one of {', '.join(MATCHES)}",
            )
        )
    elif not isinstance(match, str) or match.lower() not in MATCHES:
        errors.append(
            _invalid(
                f"{here}/{criterion}_filter",
                f"{criterion}_filter must be one of {', '.join(MATCHES)}",
            )
        )
    if errors:
        return None, errors
    field: FilterField = "cli" if criterion == "cli" else "cld"
    return Filter(kind, field, match=str(match).lower(), value=str(value)), []
