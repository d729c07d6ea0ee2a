"""What the active agent last saw of Git, for ``gitswarm status`` to read (issues 13, 18).

``gitswarm status`` reads what the agent recorded when an agent holds the store's lease
(as ``argocd app list`` reads the controller's status), instead of rendering every app
and asking the swarm. The statuses are in ``app_status`` already; what no table held is
the agent's own view of Git: the head it follows, the apps × environments it watches at
that head (and their stack names), when it last polled and the last poll's error. One
row per lock name (``agent``), rewritten after each poll.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0005"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_source",
        sa.Column("name", sa.String, nullable=False),
        sa.Column("holder", sa.String, nullable=False),
        sa.Column("head", sa.String, nullable=True),
        sa.Column("apps", sa.JSON, nullable=False),
        sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_agent_source"),
    )


def downgrade() -> None:
    op.drop_table("agent_source")
