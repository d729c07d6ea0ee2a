"""The initial state store: operations, locks, baselines, status, promotions, audit.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("app", sa.String, nullable=False),
        sa.Column("env", sa.String, nullable=False),
        sa.Column("trigger", sa.String, nullable=False),
        sa.Column("actor", sa.String),
        sa.Column("holder", sa.String),
        sa.Column("revision", sa.String),
        sa.Column("previous_revision", sa.String),
        sa.Column("author", sa.String),
        sa.Column("commit_time", UTC_TS),
        sa.Column("started_at", UTC_TS, nullable=False),
        sa.Column("finished_at", UTC_TS),
        sa.Column("result", sa.String, nullable=False),
        sa.Column("reason", sa.String),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operations"),
    )
    op.create_index("ix_operations_app_env_id", "operations", ["app", "env", "id"])
    op.create_index("ix_operations_result", "operations", ["result"])

    op.create_table(
        "operation_changes",
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("service", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("operation_id", "service", name="pk_operation_changes"),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name="fk_operation_changes_operation_id_operations",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "locks",
        sa.Column("name", sa.String, nullable=False),
        sa.Column("holder", sa.String, nullable=False),
        sa.Column("acquired_at", UTC_TS, nullable=False),
        sa.Column("expires_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_locks"),
    )

    op.create_table(
        "baselines",
        sa.Column("app", sa.String, nullable=False),
        sa.Column("env", sa.String, nullable=False),
        sa.Column("service", sa.String, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("spec_hash", sa.String, nullable=False),
        sa.Column("revision", sa.String),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("app", "env", "service", name="pk_baselines"),
    )

    op.create_table(
        "app_status",
        sa.Column("app", sa.String, nullable=False),
        sa.Column("env", sa.String, nullable=False),
        sa.Column("sync", sa.String, nullable=False),
        sa.Column("health", sa.String, nullable=False),
        sa.Column("last_result", sa.String),
        sa.Column("operation_id", sa.Integer),
        sa.Column("revision", sa.String),
        sa.Column("reason", sa.String),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("drift", sa.JSON, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("app", "env", name="pk_app_status"),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name="fk_app_status_operation_id_operations",
            ondelete="SET NULL",
        ),
    )

    op.create_table(
        "bad_revisions",
        sa.Column("app", sa.String, nullable=False),
        sa.Column("env", sa.String, nullable=False),
        sa.Column("revision", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("marked_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("app", "env", "revision", name="pk_bad_revisions"),
    )

    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("app", sa.String, nullable=False),
        sa.Column("from_env", sa.String, nullable=False),
        sa.Column("to_env", sa.String, nullable=False),
        sa.Column("images", sa.JSON, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("requested_by", sa.String, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.Column("gates", sa.JSON, nullable=False),
        sa.Column("commit_sha", sa.String),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_promotions"),
    )
    op.create_index("ix_promotions_status", "promotions", ["status"])

    op.create_table(
        "promotion_decisions",
        sa.Column("promotion_id", sa.Integer, nullable=False),
        sa.Column("username", sa.String, nullable=False),
        sa.Column("decision", sa.String, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("promotion_id", "username", name="pk_promotion_decisions"),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["promotions.id"],
            name="fk_promotion_decisions_promotion_id_promotions",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "notifications",
        sa.Column("app", sa.String, nullable=False),
        sa.Column("env", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("fingerprint", sa.String, nullable=False),
        sa.Column("sent_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("app", "env", "kind", name="pk_notifications"),
    )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_actor", "audit_events", ["actor"])
    op.create_index("ix_audit_events_target", "audit_events", ["target"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("notifications")
    op.drop_table("promotion_decisions")
    op.drop_table("promotions")
    op.drop_table("bad_revisions")
    op.drop_table("app_status")
    op.drop_table("baselines")
    op.drop_table("locks")
    op.drop_table("operation_changes")
    op.drop_table("operations")
