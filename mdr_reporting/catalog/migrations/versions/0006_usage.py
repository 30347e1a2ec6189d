"""MDR usage reports: the job and result of each (mdr_reporting/usage).

Revision ID: 0006_usage
Revises: 0004_engine
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_usage"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_reports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("accounts", sa.Text(), nullable=False),
        sa.Column("aggregation_type", sa.String(16), nullable=False),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("profiles", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_usage_reports_account_created", "usage_reports", ["account_id", "created_at"]
    )
    op.create_index(
        "ix_usage_reports_status_lease", "usage_reports", ["status", "lease_expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_usage_reports_status_lease", "usage_reports")
    op.drop_index("ix_usage_reports_account_created", "usage_reports")
    op.drop_table("usage_reports")
