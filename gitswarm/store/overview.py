"""The newest operation of every application × environment: the "last operation" column
of the dashboard's overview (api/dashboard/), which also polls it (twice a second, per
agent) to see a sync that another process (a `gitswarm sync` in a terminal) started or
finished.

A GROUP BY over the whole operations table grows with the history (a million rows after
a busy year), so two cheap reads are combined instead: the newest ``RECENT`` operations
by primary key (what just started or ended anywhere), and, for the pairs that did
nothing lately, the operation each status row points at (``app_status.operation_id``,
written with every outcome). Dry runs are not the last operation of anything.
"""

from __future__ import annotations

import sqlalchemy as sa

from gitswarm.model.operation import Operation
from gitswarm.store.db import Database
from gitswarm.store.operations import _load
from gitswarm.store.schema import app_status, operations

RECENT = 2000


class OverviewMixin:
    _db: Database

    def latest_operations(self) -> dict[tuple[str, str], Operation]:
        """(app, env) -> its newest operation that was not a dry run."""
        with self._db.read("read the newest operations") as conn:
            top = conn.execute(sa.select(sa.func.max(operations.c.id))).scalar_one_or_none()
            if top is None:
                return {}
            recent = conn.execute(
                sa.select(operations.c.app, operations.c.env, sa.func.max(operations.c.id))
                .where(operations.c.id > top - RECENT, operations.c.dry_run.is_(False))
                .group_by(operations.c.app, operations.c.env)
            ).all()
            newest = {(app, env): op_id for app, env, op_id in recent}
            pointed = conn.execute(
                sa.select(app_status.c.app, app_status.c.env, app_status.c.operation_id).where(
                    app_status.c.operation_id.is_not(None)
                )
            ).all()
            for app, env, op_id in pointed:
                if (app, env) not in newest:
                    newest[(app, env)] = op_id
            if not newest:
                return {}
            found = _load(conn, sa.select(operations).where(operations.c.id.in_(newest.values())))
        return {(op.app, op.env): op for op in found if not op.dry_run}
