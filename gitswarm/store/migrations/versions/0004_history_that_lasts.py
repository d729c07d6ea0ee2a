"""The commits each deployment brought (DORA lead time), and the indexes that keep
`history`, `history export`, `dora` and retention fast at a million operations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "operation_commits",
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("sha", sa.String, nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("operation_id", "sha", name="pk_operation_commits"),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name="fk_operation_commits_operation_id_operations",
            ondelete="CASCADE",
        ),
    )
    # `history --env E` (newest first), `dora --env E --since` and retention by age.
    op.create_index("ix_operations_env_id", "operations", ["env", "id"])
    op.create_index("ix_operations_env_started_at", "operations", ["env", "started_at"])
    op.create_index("ix_operations_started_at", "operations", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_operations_started_at", "operations")
    op.drop_index("ix_operations_env_started_at", "operations")
    op.drop_index("ix_operations_env_id", "operations")
    op.drop_table("operation_commits")
