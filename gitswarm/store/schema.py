"""The state store's tables, as SQLAlchemy Core metadata: what the queries are written against.

The migrations in ``migrations/versions/`` create the same tables without importing this
module (a migration must stay as it was written); ``test_store_migrations`` checks that
the migrated database and this metadata agree, on SQLite and on PostgreSQL.

Enumerated values (kinds, results, statuses) are plain strings checked by the store, not
database enums, so adding a value needs no migration. Timestamps are UTC everywhere.

A table whose rows are a model record column for field (promotion_holds: Hold,
baselines: Baseline) is read with ``from_row``: its columns are written once, here, and
tests/unit/test_store_records.py checks the record's fields against them; no reader
lists them again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# The newest migration (SCHEMA_HEAD) is set in location.py, which loads without SQLAlchemy.
from gitswarm.store.location import SCHEMA_HEAD as SCHEMA_HEAD
from gitswarm.store.location import VERSION_TABLE as VERSION_TABLE

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Record = TypeVar("Record", bound=DataclassInstance)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so the value is stored as
    naive UTC text (which also sorts correctly) and made aware again on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store: use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], datetime | None] | None:
        generic = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or generic is None:
            return generic

        def from_text(value: Any) -> datetime | None:
            # SQLite hands back the text SQLAlchemy wrote ("2026-12-01 09:00:00.000000"):
            # one C call makes it an aware datetime, a third of the generic path's cost,
            # which `gitswarm dora` pays some 30,000 times (bench/dora.py). Anything else
            # takes the generic path.
            if isinstance(value, str) and len(value) == 26:
                try:
                    return datetime.fromisoformat(value + "+00:00")
                except ValueError:
                    pass
            return generic(value)

        return from_text

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _name(column: str, **kw: Any) -> sa.Column[str]:
    return sa.Column(column, sa.String, **kw)


operations = sa.Table(
    "operations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    _name("kind", nullable=False),
    _name("app", nullable=False),
    _name("env", nullable=False),
    _name("trigger", nullable=False),
    _name("actor"),
    _name("holder"),
    _name("revision"),
    _name("previous_revision"),
    _name("author"),
    sa.Column("commit_time", UTCDateTime),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    _name("result", nullable=False),
    _name("reason"),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    # migration 0007: how many services it created, changed or removed (a drift record:
    # found drifted), set with its changes; what `gitswarm dora` filters on
    sa.Column("changed", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Index(None, "app", "env", "id"),
    sa.Index(None, "result"),
    # migration 0004: `history --env E`, `dora --env E --since`, retention by age
    sa.Index(None, "env", "id"),
    sa.Index(None, "env", "started_at"),
    sa.Index(None, "started_at"),
    # migration 0007: an app's last drift record before a DORA window, and its end
    sa.Index(None, "app", "env", "kind", "id"),
)

operation_changes = sa.Table(
    "operation_changes",
    metadata,
    sa.Column(
        "operation_id",
        sa.Integer,
        sa.ForeignKey("operations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    _name("service", primary_key=True),
    _name("action", nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),  # list of changed field paths
)

# The commits a successful deployment brought, `git log previous..revision` (migration
# 0004): the lead time of each commit (gitswarm/dora/).
operation_commits = sa.Table(
    "operation_commits",
    metadata,
    sa.Column(
        "operation_id",
        sa.Integer,
        sa.ForeignKey("operations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    _name("sha", primary_key=True),
    sa.Column("committed_at", UTCDateTime, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
)

locks = sa.Table(
    "locks",
    metadata,
    _name("name", primary_key=True),
    _name("holder", nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

baselines = sa.Table(
    "baselines",
    metadata,
    _name("app", primary_key=True),
    _name("env", primary_key=True),
    _name("service", primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),  # the live Spec right after the deploy
    # the compose service as rendered (migration 0002; older rows have {})
    sa.Column("rendered", sa.JSON, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("version", sa.BigInteger, nullable=False),
    _name("spec_hash", nullable=False),
    _name("revision"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

app_status = sa.Table(
    "app_status",
    metadata,
    _name("app", primary_key=True),
    _name("env", primary_key=True),
    _name("sync", nullable=False),
    _name("health", nullable=False),
    _name("last_result"),
    sa.Column("operation_id", sa.Integer, sa.ForeignKey("operations.id", ondelete="SET NULL")),
    _name("revision"),
    _name("reason"),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("drift", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# What the active agent last saw of Git (migration 0008): its head, the apps x
# environments it watches there ([[app, env, stack], ...]), its last poll and that poll's
# error. One row per lock name, rewritten after each poll; `gitswarm status` reads it.
agent_source = sa.Table(
    "agent_source",
    metadata,
    _name("name", primary_key=True),
    _name("holder", nullable=False),
    _name("head"),
    sa.Column("apps", sa.JSON, nullable=False),
    sa.Column("polled_at", UTCDateTime),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

bad_revisions = sa.Table(
    "bad_revisions",
    metadata,
    _name("app", primary_key=True),
    _name("env", primary_key=True),
    _name("revision", primary_key=True),
    _name("reason", nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("marked_at", UTCDateTime, nullable=False),
)

promotions = sa.Table(
    "promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    _name("app", nullable=False),
    _name("from_env", nullable=False),
    _name("to_env", nullable=False),
    sa.Column("images", sa.JSON, nullable=False),
    _name("status", nullable=False),
    _name("requested_by", nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("gates", sa.JSON, nullable=False),
    _name("commit_sha"),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index(None, "status"),
)

promotion_decisions = sa.Table(
    "promotion_decisions",
    metadata,
    sa.Column(
        "promotion_id",
        sa.Integer,
        sa.ForeignKey("promotions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    _name("username", primary_key=True),  # one decision per user and promotion
    _name("decision", nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

promotion_holds = sa.Table(
    "promotion_holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    _name("app", nullable=False),
    _name("env", nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("images", sa.JSON, nullable=False),  # repository -> the tag rolled back
    # The rollback it came from: one hold per rollback, however often it is seen.
    sa.Column("operation_id", sa.Integer, unique=True),
    _name("from_revision"),
    _name("to_revision"),
    _name("created_by", nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("released_at", UTCDateTime),
    _name("released_by"),
    sa.Column("release_reason", sa.Text, nullable=False),
    sa.Index(None, "app", "env"),
)

notifications = sa.Table(
    "notifications",
    metadata,
    _name("app", primary_key=True),
    _name("env", primary_key=True),
    _name("kind", primary_key=True),
    _name("fingerprint", nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    _name("actor", nullable=False),
    _name("action", nullable=False),
    _name("target", nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Index(None, "at"),
    sa.Index(None, "actor"),
    sa.Index(None, "target"),
)

# A webhook delivery's keys (webhooks.Provider.keys: "id:<sha256>", "body:<sha256>",
# "signed:<sha256>"), kept for a week so that a replay is refused (migration 0003).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _name("provider", primary_key=True),
    _name("key", primary_key=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Index(None, "received_at"),
)

# Dashboard users (migration 0005): an argon2id hash of the password, never the password;
# ``bindings``: [{"role": "deployer", "envs": ["development"]}, ...].
users = sa.Table(
    "users",
    metadata,
    _name("name", primary_key=True),
    _name("password_hash", nullable=False),
    sa.Column("bindings", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Signed-in browsers: the SHA-256 of the session cookie's random value, never the value.
sessions = sa.Table(
    "sessions",
    metadata,
    _name("token_hash", primary_key=True),
    _name("username", nullable=False),
    _name("csrf", nullable=False),
    _name("address", nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index(None, "username"),
    sa.Index(None, "expires_at"),
)

# API tokens made by `gitswarm token create`: the SHA-256 of the token, shown once.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    _name("token_hash", nullable=False, unique=True),
    _name("username", nullable=False),
    sa.Column("bindings", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    _name("created_by", nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("description", sa.Text, nullable=False),
)


def from_row(record: type[Record], row: sa.RowMapping) -> Record:
    """The model record of a row whose columns are its fields (see the module docstring)."""
    return record(**{f.name: row[f.name] for f in dataclasses.fields(record)})
