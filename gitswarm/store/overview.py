"""The newest operation of every application × environment, in one query: the "last
operation" column of the dashboard's overview (api/dashboard/), which also polls it to
see a sync that another process (a `gitswarm sync` in a terminal) started or finished.
"""

from __future__ import annotations

import sqlalchemy as sa

from gitswarm.model.operation import Operation
from gitswarm.store.db import Database
from gitswarm.store.operations import _load
from gitswarm.store.schema import operations


class OverviewMixin:
    _db: Database

    def latest_operations(self) -> dict[tuple[str, str], Operation]:
        """(app, env) -> its newest operation that was not a dry run."""
        newest = (
            sa.select(sa.func.max(operations.c.id))
            .where(operations.c.dry_run.is_(False))
            .group_by(operations.c.app, operations.c.env)
        )
        query = sa.select(operations).where(operations.c.id.in_(newest))
        with self._db.read("read the newest operations") as conn:
            return {(op.app, op.env): op for op in _load(conn, query)}
