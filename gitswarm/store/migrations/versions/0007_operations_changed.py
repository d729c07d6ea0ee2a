"""How many services each operation created, changed or removed (a drift record: found
drifted), kept on the operation itself when it is recorded: what `gitswarm dora` filters
on. Read from ``operation_changes`` instead, that fact cost a probe of the changes of
every operation in the window (PostgreSQL hashed all million of them, on every read);
bench/dora.py measured it at a million operations (bench/README.md).

The upgrade fills the column in from the recorded changes, so the old history keeps
every figure. The index on (app, env, kind, id) finds an app's last drift record before
a window, and what ended it, in one seek each (store/dora.py ``_open_before``).

(Chained after 0004 when written; the coordinator chains it after the migrations that
landed meanwhile.)

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0004"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column(
        "operations",
        sa.Column("changed", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.execute(
        "UPDATE operations SET changed = (SELECT count(*) FROM operation_changes"
        " WHERE operation_changes.operation_id = operations.id"
        " AND operation_changes.action <> 'unchanged')"
        " WHERE EXISTS (SELECT 1 FROM operation_changes"
        " WHERE operation_changes.operation_id = operations.id"
        " AND operation_changes.action <> 'unchanged')"
    )
    op.create_index("ix_operations_app_env_kind_id", "operations", ["app", "env", "kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_operations_app_env_kind_id", "operations")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("changed")
