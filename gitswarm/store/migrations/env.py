"""Alembic's entry point: migrate the connection that ``gitswarm.store.db`` hands over.

The store passes its open connection (inside the transaction that holds the migration
lock) as ``config.attributes["connection"]``; a developer drafting a revision passes a URL
as the ``sqlalchemy.url`` option instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from gitswarm.store.schema import VERSION_TABLE, metadata


def _migrate(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # drafts use batch mode, which SQLite's ALTER TABLE needs
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if isinstance(connection, sa.Connection):
    _migrate(connection)
else:
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url", ""))
    try:
        with engine.begin() as conn:
            _migrate(conn)
    finally:
        engine.dispose()
