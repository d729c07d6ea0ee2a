"""Holds after a rollback: automation leaves a rolled-back app alone (issue 14).

(Chained after 0007, which landed on main first; the coordinator re-chains it after
0005 when the dashboard lands.)

Revision ID: 0006
Revises: 0007
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0007"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "promotion_holds",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("app", sa.String, nullable=False),
        sa.Column("env", sa.String, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("images", sa.JSON, nullable=False),
        sa.Column("operation_id", sa.Integer),
        sa.Column("from_revision", sa.String),
        sa.Column("to_revision", sa.String),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True)),
        sa.Column("released_by", sa.String),
        sa.Column("release_reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_holds"),
        sa.UniqueConstraint("operation_id", name="uq_promotion_holds_operation_id"),
    )
    op.create_index("ix_promotion_holds_app_env", "promotion_holds", ["app", "env"])


def downgrade() -> None:
    op.drop_index("ix_promotion_holds_app_env", "promotion_holds")
    op.drop_table("promotion_holds")
