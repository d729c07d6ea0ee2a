"""The revisions, oldest first: 0001_initial, ... (Alembic loads them by path)."""
