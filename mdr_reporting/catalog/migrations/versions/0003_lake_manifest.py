"""The S3 lake's manifest: files per day with a version counter, and snapshot leases.

Revision ID: 0003_lake_manifest
Revises: 0002_limits
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_lake_manifest"
down_revision = "0002_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lake_days",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "lake_files",
        sa.Column("path", sa.String(255), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_lake_files_day", "lake_files", ["day", "seq"])
    op.create_table(
        "lake_leases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lake_leases")
    op.drop_index("ix_lake_files_day", "lake_files")
    op.drop_table("lake_files")
    op.drop_table("lake_days")
