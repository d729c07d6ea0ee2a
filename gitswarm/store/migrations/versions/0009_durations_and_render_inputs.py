"""Durations that a step of the wall clock does not move, and what a deployed render
read (issue 18).

- ``operations.finished_boot`` / ``finished_mono``: the kernel's boot id and the
  monotonic reading when an operation finished, beside its wall time: a soak measured
  from it (promote/pipeline.py) follows the monotonic clock on that boot
  (model/instant.py). Older rows have none and fall back to wall time.
- ``app_status.render_inputs`` / ``render_digest``: the questions the deployed render
  asked of the repository and the digest of their answers with its settings
  (render/inputs.py, reconcile/rendering.py), so that a new agent skips an app whose
  inputs did not change from what the store says is deployed, as the running agent
  does from its memory (reconcile/agent/gitpoll.py). Cleared with every other change of
  the deployed revision.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default): no copy of a large history table.
    op.add_column("operations", sa.Column("finished_boot", sa.String, nullable=True))
    op.add_column("operations", sa.Column("finished_mono", sa.Float, nullable=True))
    op.add_column("app_status", sa.Column("render_inputs", sa.JSON, nullable=True))
    op.add_column("app_status", sa.Column("render_digest", sa.String, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("app_status") as batch:
        batch.drop_column("render_digest")
        batch.drop_column("render_inputs")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("finished_mono")
        batch.drop_column("finished_boot")
