"""A Complete report records the fingerprint of what it holds, so a repeated request is
completed from a copy of its file instead of a build (worker/reuse.py).

Revision ID: 0007_reuse
Revises: 0004_engine
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_reuse"
down_revision = "0006_usage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reused_from", sa.String(36), nullable=True))
        batch.create_index("ix_requests_fingerprint", ["fingerprint"])


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_fingerprint")
        batch.drop_column("reused_from")
        batch.drop_column("fingerprint")
