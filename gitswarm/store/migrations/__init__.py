"""Alembic migrations of the state store, shipped inside the package.

``Store`` runs ``upgrade head`` on every open (see ``gitswarm/store/db.py``), so users never
run Alembic themselves. Migrations must work on SQLite and PostgreSQL: write them by hand
with ``op.*`` calls (``op.batch_alter_table`` for SQLite's limited ALTER TABLE), never
import ``gitswarm.store.schema`` from one, and keep ``schema.py`` in step — the test
``tests/unit/test_store_migrations.py`` compares the two on both databases.

To draft a new revision against a database at head (then edit it by hand)::

    from alembic import command
    from gitswarm.store.db import alembic_config
    cfg = alembic_config(url="sqlite:////tmp/draft.db")
    command.upgrade(cfg, "head")
    command.revision(cfg, message="what changes", autogenerate=True)
"""
