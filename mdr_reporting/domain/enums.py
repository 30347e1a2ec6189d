"""Codes and names of api.md sections 2, 3, 6 and 9, in one place."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "DIRECTIONS",
    "FORMATS",
    "RECORD_TYPE_STATUSES",
    "STATUS_RECORD_TYPE",
    "Direction",
    "RecordType",
    "RequestStatus",
]


class RequestStatus(IntEnum):
    PENDING = 1
    COMPLETE = 2
    FAILED = 3
    EXPIRED = 4


class Direction(IntEnum):
    INBOUND = 1
    OUTBOUND = 2

    @property
    def wire(self) -> str:
        return self.name.lower()


class RecordType(IntEnum):
    COMPLETE = 1
    INCOMPLETE = 2
    ERRORS = 3

    @property
    def v2_name(self) -> str:
        return {1: "COMPLETED", 2: "INCOMPLETE", 3: "ERRORS"}[self.value]

    @property
    def report_name(self) -> str:
        """How the report file's record_type column spells it (api.md section 7)."""
        return {1: "complete", 2: "incomplete", 3: "error"}[self.value]


DIRECTIONS = ("inbound", "outbound")

RECORD_TYPE_STATUSES: dict[RecordType, tuple[str, ...]] = {
    RecordType.COMPLETE: ("delivered", "delivery_unconfirmed", "received"),
    RecordType.INCOMPLETE: ("queued", "sending", "sent"),
    RecordType.ERRORS: ("sending_failed", "delivery_failed"),
}

STATUS_RECORD_TYPE: dict[str, RecordType] = {
    status: record_type
    for record_type, statuses in RECORD_TYPE_STATUSES.items()
    for status in statuses
}

FORMATS = ("csv", "csv.gz", "jsonl.gz", "parquet")
