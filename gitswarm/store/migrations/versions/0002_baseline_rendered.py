"""Baselines keep the rendered compose service beside the live spec.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    # Existing rows get {}: the next deploy of each service records the real one.
    with op.batch_alter_table("baselines") as batch:
        batch.add_column(
            sa.Column("rendered", sa.JSON, nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("baselines") as batch:
        batch.drop_column("rendered")
