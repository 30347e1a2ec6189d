"""Limits: fair claiming turns per account, rate-limit buckets, the per-account Pending index.

Revision ID: 0002_limits
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_limits"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claim_turns",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("last_claimed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("bucket", sa.String(160), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("stamp", sa.Float(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_requests_account_status", "requests", ["account_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_requests_account_status", "requests")
    op.drop_table("rate_buckets")
    op.drop_table("claim_turns")
