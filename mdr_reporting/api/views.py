"""The two views of one request resource: v1 (integers, bare) and v2 legacy (strings)."""

from __future__ import annotations

from typing import Any

from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.domain.times import get_zone, to_iso, utc_iso

__all__ = ["v1_view", "v2_view"]


def _iso_or_none(value: Any) -> str | None:
    return utc_iso(value) if value is not None else None


def _extensions(state: RequestState) -> dict[str, Any]:
    spec = state.spec
    return {
        "record_count": state.record_count,
        "size_bytes": state.size_bytes,
        "expires_at": _iso_or_none(state.expires_at),
        "progress": state.progress,
        "format": spec.format,
        "include_message_body": spec.include_message_body,
        "webhook_url": spec.webhook_url,
        "managed_accounts": list(spec.managed_accounts),
        "select_all_managed_accounts": spec.select_all_managed_accounts,
        "accounts": list(state.accounts),
        "error": state.error,
        "warnings": list(state.warnings),
        "engine": state.engine,
        "queue_position": state.queue_position,
        "started_at": _iso_or_none(state.started_at),
        "estimated_completion_at": _iso_or_none(state.estimated_completion_at),
    }


def _url(state: RequestState, report_url: str | None) -> str | None:
    return report_url if state.status is RequestStatus.COMPLETE else None


def v1_view(state: RequestState, report_url: str | None = None) -> dict[str, Any]:
    spec = state.spec
    zone = get_zone(spec.timezone)
    return {
        "id": state.id,
        "start_time": to_iso(spec.start_time, zone),
        "end_time": to_iso(spec.end_time, zone),
        "timezone": spec.timezone,
        "call_types": [int(d) for d in spec.directions],
        "directions": [d.wire for d in spec.directions],
        "record_types": [int(r) for r in spec.record_types],
        "connections": list(spec.connections),
        "profiles": list(spec.profiles),
        "report_name": spec.report_name,
        "filters": spec.filters_json(),
        "status": int(state.status),
        "report_url": _url(state, report_url),
        "created_at": utc_iso(state.created_at),
        "updated_at": utc_iso(state.updated_at),
        **_extensions(state),
    }


def _connection(value: str) -> int | str:
    return int(value) if value.isdigit() and str(int(value)) == value else value


def v2_view(state: RequestState, report_url: str | None = None) -> dict[str, Any]:
    spec = state.spec
    zone = get_zone(spec.timezone)
    return {
        "id": state.id,
        "record_type": "mdr_report",
        "start_date": to_iso(spec.start_time, zone),
        "end_date": to_iso(spec.end_time, zone),
        "timezone": spec.timezone,
        "directions": [d.name for d in spec.directions],
        "record_types": [r.v2_name for r in spec.record_types],
        "connections": [_connection(c) for c in spec.connections],
        "profiles": list(spec.profiles),
        "filters": [f.to_json() for f in spec.filters],
        "report_name": spec.report_name,
        "report_url": _url(state, report_url),
        "status": state.status.name,
        "created_at": utc_iso(state.created_at),
        "updated_at": utc_iso(state.updated_at),
        **_extensions(state),
    }
