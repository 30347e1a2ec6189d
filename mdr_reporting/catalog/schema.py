"""Catalog tables in SQLAlchemy Core; the migrations create exactly these (a test checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "UTCDateTime",
    "accounts",
    "api_keys",
    "claim_turns",
    "lake_days",
    "lake_files",
    "lake_leases",
    "metadata",
    "rate_buckets",
    "requests",
    "usage_reports",
    "webhook_attempts",
    "webhook_deliveries",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (naive text) and PostgreSQL (timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("parent_id", String(64), ForeignKey("accounts.id"), nullable=True, index=True),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("accounts", Text, nullable=False),  # JSON list: every account the report covers
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("directions", Text, nullable=False),  # JSON int list
    Column("record_types", Text, nullable=False),  # JSON int list
    Column("connections", Text, nullable=False),  # JSON string list
    Column("profiles", Text, nullable=False),  # JSON string list
    Column("report_name", String(255), nullable=False),
    Column("filters", Text, nullable=False),  # normalised JSON
    Column("include_message_body", Boolean, nullable=False),
    Column("format", String(16), nullable=False),
    Column("webhook_url", Text, nullable=True),
    Column("managed_accounts", Text, nullable=False),  # JSON string list, as sent
    Column("select_all_managed_accounts", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("warnings", Text, nullable=False),  # JSON string list
    Column("record_count", Integer, nullable=True),
    Column("size_bytes", Integer, nullable=True),
    Column("file_key", Text, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("progress", Float, nullable=False, default=0.0),
    Column("error", Text, nullable=True),
    Column("engine", String(16), nullable=True),  # the engine that built it (duckdb, spark)
    Column("surface", String(8), nullable=True),  # v1 or v2: the view its webhooks carry
    Column("started_at", UTCDateTime, nullable=True),  # when its current or last build began
    # what the file holds: the compiled query, format and the lake files of its days
    # (worker/reuse.py); a request completed from another's file names it in reused_from
    Column("fingerprint", String(64), nullable=True),
    Column("reused_from", String(36), nullable=True),
    # the job columns: the request row is the job
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("idempotency_hash", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    UniqueConstraint("account_id", "idempotency_key", name="uq_requests_idempotency"),
    Index("ix_requests_account_created", "account_id", "created_at"),
    Index("ix_requests_status_lease", "status", "lease_expires_at"),
    Index("ix_requests_account_status", "account_id", "status"),
    # covers the queue position of a Pending request (catalog/waiting.py) without the rows
    Index(
        "ix_requests_queue",
        "status",
        "account_id",
        "created_at",
        "id",
        "lease_owner",
        "lease_expires_at",
        "deleted_at",
    ),
    Index("ix_requests_fingerprint", "fingerprint"),
)

# When each account last had a request claimed: the round-robin turn of fair claiming.
claim_turns = Table(
    "claim_turns",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("last_claimed_at", UTCDateTime, nullable=False),
)

# Token buckets of the rate limits, shared by every API process through the catalog.
# ``stamp`` is unix seconds of the last refill; ``granted`` is the answer of the last take.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("bucket", String(160), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("stamp", Float, nullable=False),
    Column("granted", Boolean, nullable=False),
)

# The lake's manifest when the lake is on S3 (lake/s3.py): one catalog, one lake.
lake_days = Table(
    "lake_days",
    metadata,
    Column("day", String(10), primary_key=True),  # ISO date (UTC)
    Column("version", BigInteger, nullable=False),  # +1 on every commit touching the day
)

lake_files = Table(
    "lake_files",
    metadata,
    Column("path", String(255), primary_key=True),  # key under the lake's prefix
    Column("day", String(10), nullable=False),
    Column("seq", BigInteger, nullable=False),  # listing order in the day (commit order)
    Column("rows", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),  # replaced; deleted once no lease needs it
    Index("ix_lake_files_day", "day", "seq"),
)

lake_leases = Table(
    "lake_leases",
    metadata,
    Column("id", String(32), primary_key=True),  # a snapshot some reader holds
    Column("taken_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Completion webhooks (webhooks/): one row per event to announce, claimed under a lease
# like a request, and one row per HTTP attempt, shown by the webhook_deliveries route.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),  # the webhook-id header: stable per delivery
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
    Column("event_status", Integer, nullable=False),  # the status announced: 2, 3 or 4
    Column("url", Text, nullable=False),
    Column("surface", String(8), nullable=False),
    Column("state", String(16), nullable=False),  # pending, delivered, failed, cancelled
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True),  # null once finished
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_request", "request_id", "created_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", String(36), ForeignKey("webhook_deliveries.id"), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=True),
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=True),  # null: no retry follows
)

# MDR usage reports (mdr_reporting/usage): small aggregates computed by the worker; the
# row is the job (lease columns as on requests) and holds the result.
usage_reports = Table(
    "usage_reports",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("accounts", Text, nullable=False),  # JSON list: every account it covers
    Column("aggregation_type", String(16), nullable=False),
    Column("start_date", UTCDateTime, nullable=False),  # inclusive
    Column("end_date", UTCDateTime, nullable=False),  # inclusive, as given
    Column("end_time", UTCDateTime, nullable=False),  # the exclusive bound it means
    Column("profiles", Text, nullable=False),  # JSON string list
    Column("status", Integer, nullable=False),
    Column("result", Text, nullable=True),  # JSON list of result rows once Complete
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_usage_reports_account_created", "account_id", "created_at"),
    Index("ix_usage_reports_status_lease", "status", "lease_expires_at"),
)
