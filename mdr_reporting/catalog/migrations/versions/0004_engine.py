"""Requests record the engine that built them (MDR_ENGINE=auto chooses per request).

Revision ID: 0004_engine
Revises: 0003_lake_manifest
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_engine"
down_revision = "0003_lake_manifest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("engine", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("engine")
