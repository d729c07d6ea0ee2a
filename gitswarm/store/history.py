"""History that lasts: the whole audit trail streamed out (`gitswarm history export`),
and retention (operations older than N days pruned; the audit trail kept unless the
operator sets its own limit). Called by cli/ops.py and the agent's retention job
(reconcile/retention.py).

Export walks the table by id in batches (a keyset, never OFFSET), so a million
operations stream in constant memory. Pruning deletes in batches too, each its own
short write transaction, so the agent's writes never wait long behind it; it never
removes what the agent still needs: the operation an app's status points at, and per
app × environment the newest successful deployment of each of the last two revisions
(what `rollback --previous` returns to).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from gitswarm.model.operation import DEPLOY_KINDS, AuditEvent, Operation
from gitswarm.store.db import Database
from gitswarm.store.operations import _load
from gitswarm.store.queries import aware
from gitswarm.store.schema import app_status, audit_events, operations

EXPORT_BATCH = 1000
PRUNE_BATCH = 5000
KEEP_REVISIONS = 2  # per app x env: the deployed revision and the one before it


@dataclass(frozen=True)
class Pruned:
    operations: int = 0
    audit_events: int = 0


class HistoryMixin:
    _db: Database

    def export_operations(
        self, *, since: datetime | None = None, env: str | None = None, batch: int = EXPORT_BATCH
    ) -> Iterator[Operation]:
        """Every operation (started at or after ``since``; of ``env``), oldest first, with
        its changes and commits. Each batch is one read; the iterator holds no
        transaction open between batches."""
        aware(since, "since")
        last = 0
        if since is not None:  # ids grow with time: start at the first one since then
            with self._db.read("find where the export starts") as conn:
                first = conn.execute(
                    sa.select(sa.func.min(operations.c.id)).where(operations.c.started_at >= since)
                ).scalar_one_or_none()
            if first is None:
                return
            last = first - 1
        while True:
            query = (
                sa.select(operations)
                .where(operations.c.id > last)
                .order_by(operations.c.id)
                .limit(batch)
            )
            if env is not None:
                query = query.where(operations.c.env == env)
            with self._db.read("export the history") as conn:
                found = _load(conn, query, with_commits=True)
            if not found:
                return
            for op in found:
                if since is None or op.started_at >= since:
                    yield op
            last = found[-1].id

    def export_audit(
        self, *, since: datetime | None = None, batch: int = EXPORT_BATCH
    ) -> Iterator[AuditEvent]:
        """Every audit event (at or after ``since``), oldest first."""
        aware(since, "since")
        last = 0
        while True:
            query = (
                sa.select(audit_events)
                .where(audit_events.c.id > last)
                .order_by(audit_events.c.id)
                .limit(batch)
            )
            if since is not None:
                query = query.where(audit_events.c.at >= since)
            with self._db.read("export the audit trail") as conn:
                rows = conn.execute(query).mappings().all()
            if not rows:
                return
            for row in rows:
                yield AuditEvent(
                    id=row["id"],
                    at=row["at"],
                    actor=row["actor"],
                    action=row["action"],
                    target=row["target"],
                    details=dict(row["details"]),
                )
            last = rows[-1]["id"]

    def _kept_operations(self, conn: sa.Connection) -> set[int]:
        latest = (
            sa.select(
                sa.func.max(operations.c.id).label("id"),
                operations.c.app,
                operations.c.env,
            )
            .where(
                operations.c.kind.in_(DEPLOY_KINDS),
                operations.c.result == "Succeeded",
                operations.c.dry_run.is_(False),
                operations.c.revision.is_not(None),
            )
            .group_by(operations.c.app, operations.c.env, operations.c.revision)
            .subquery()
        )
        ranked = sa.select(
            latest.c.id,
            sa.func.row_number()
            .over(partition_by=(latest.c.app, latest.c.env), order_by=latest.c.id.desc())
            .label("n"),
        ).subquery()
        keep = set(
            conn.execute(sa.select(ranked.c.id).where(ranked.c.n <= KEEP_REVISIONS)).scalars()
        )
        keep.update(
            conn.execute(
                sa.select(app_status.c.operation_id).where(app_status.c.operation_id.is_not(None))
            ).scalars()
        )
        return keep

    def prune_history(
        self,
        *,
        operations_before: datetime | None = None,
        audit_before: datetime | None = None,
        batch: int = PRUNE_BATCH,
    ) -> Pruned:
        """Delete finished operations that started before ``operations_before`` (with
        their changes and commits) and audit events before ``audit_before``; None keeps
        them. What the agent still needs is kept (see the module docstring)."""
        aware(operations_before, "operations_before")
        aware(audit_before, "audit_before")
        removed_ops = removed_audit = 0
        if operations_before is not None:
            with self._db.read("find the operations retention keeps") as conn:
                keep = self._kept_operations(conn)
            last = 0
            while True:
                with self._db.write("prune old operations") as conn:
                    ids = list(
                        conn.execute(
                            sa.select(operations.c.id)
                            .where(
                                operations.c.id > last,
                                operations.c.started_at < operations_before,
                                operations.c.result != "Running",
                            )
                            .order_by(operations.c.id)
                            .limit(batch)
                        ).scalars()
                    )
                    if not ids:
                        break
                    last = ids[-1]
                    doomed = [i for i in ids if i not in keep]
                    if doomed:
                        # changes and commits go with them (ON DELETE CASCADE)
                        conn.execute(sa.delete(operations).where(operations.c.id.in_(doomed)))
                        removed_ops += len(doomed)
        if audit_before is not None:
            while True:
                with self._db.write("prune old audit events") as conn:
                    ids = list(
                        conn.execute(
                            sa.select(audit_events.c.id)
                            .where(audit_events.c.at < audit_before)
                            .order_by(audit_events.c.id)
                            .limit(batch)
                        ).scalars()
                    )
                    if not ids:
                        break
                    conn.execute(sa.delete(audit_events).where(audit_events.c.id.in_(ids)))
                    removed_audit += len(ids)
        return Pruned(removed_ops, removed_audit)
