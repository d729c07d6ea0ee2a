"""The history DORA metrics are computed from: one environment's operations in a window,
read lean (no messages, only the changes that changed something, the deployed commits),
handed to the pure ``gitswarm.dora.compute``. Called by `gitswarm dora` and the agent's
``GET /api/v1/dora``.

Three queries, each served by the index ``ix_operations_env_started_at`` (migration
0004) and the next healthy state by ``ix_operations_app_env_id``: the operations, their
service changes, their commits. bench/dora.py measures them at a million operations.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from gitswarm.dora import DRIFT_THRESHOLD, FAILURE_WINDOW, DoraReport, DoraSettings, compute
from gitswarm.dora.compute import DEPLOY_FAILURE_REASONS, DEPLOYMENT_KINDS, HEALTHY_KINDS
from gitswarm.model.operation import DeployedCommit, Operation, ServiceChange
from gitswarm.store.db import Database
from gitswarm.store.queries import aware
from gitswarm.store.schema import operation_changes, operation_commits, operations

# The columns DORA reads (not the message: the bulk of a row).
_COLUMNS = [
    operations.c[name]
    for name in (
        "id", "kind", "app", "env", "trigger", "actor", "holder", "revision", "author",
        "commit_time", "started_at", "finished_at", "result", "reason",
    )
]  # fmt: skip
_NAMES = [c.name for c in _COLUMNS]


class DoraMixin:
    _db: Database

    def dora_operations(
        self, env: str, app: str | None, since: datetime, until: datetime
    ) -> list[Operation]:
        """What DORA needs of ``env`` (``app``) in ``[since, until]`` (by start), oldest
        first: every deployment (a sync or rollback that changed something, or failed
        after reaching the swarm), every successful heal, every drift record, and after
        each failed deployment and drift record the next healthy state (a successful
        sync, rollback or heal) — not the many syncs that changed nothing between them,
        which cannot change any figure. With their changes that changed something and
        the commits they brought; messages left out."""
        aware(since, "since")
        aware(until, "until")
        o = operations
        base = [o.c.env == env, o.c.started_at >= since, o.c.started_at <= until]
        base.append(o.c.dry_run.is_(False))
        if app is not None:
            base.append(o.c.app == app)
        changed = sa.exists().where(
            operation_changes.c.operation_id == o.c.id, operation_changes.c.action != "unchanged"
        )
        failed = sa.or_(
            o.c.result == "RolledBack",
            sa.and_(o.c.result == "Failed", o.c.reason.in_(sorted(DEPLOY_FAILURE_REASONS))),
        )
        deployment = sa.and_(
            o.c.kind.in_(sorted(DEPLOYMENT_KINDS)),
            sa.or_(sa.and_(o.c.result == "Succeeded", changed), failed),
        )
        after = o.alias("after")
        next_healthy = (
            sa.select(sa.func.min(after.c.id))
            .where(
                after.c.app == o.c.app,
                after.c.env == o.c.env,
                after.c.id > o.c.id,
                after.c.kind.in_(sorted(HEALTHY_KINDS)),
                after.c.result == "Succeeded",
                after.c.dry_run.is_(False),
                after.c.started_at <= until,
            )
            .scalar_subquery()
        )
        # Not correlated with the outer query: one set of ids, computed once.
        restoring = (
            sa.select(next_healthy)
            .correlate(None)
            .where(
                *base,
                sa.or_(
                    o.c.kind == "drift", sa.and_(o.c.kind.in_(sorted(DEPLOYMENT_KINDS)), failed)
                ),
            )
        )
        wanted = sa.or_(
            deployment,
            sa.and_(o.c.kind == "heal", o.c.result == "Succeeded"),
            o.c.kind == "drift",
            o.c.id.in_(restoring),
        )
        ids = sa.select(o.c.id).where(*base, wanted)
        changes: dict[int, list[ServiceChange]] = {}
        commits: dict[int, list[DeployedCommit]] = {}
        with self._db.read("read the history for DORA") as conn:
            found = conn.execute(sa.select(*_COLUMNS).where(*base, wanted).order_by(o.c.id)).all()
            for op_id, service, action in conn.execute(
                sa.select(
                    operation_changes.c.operation_id,
                    operation_changes.c.service,
                    operation_changes.c.action,
                ).where(
                    operation_changes.c.operation_id.in_(ids),
                    operation_changes.c.action != "unchanged",
                )
            ):
                changes.setdefault(op_id, []).append(ServiceChange(service, action))
            for op_id, sha, committed_at, subject in conn.execute(
                sa.select(
                    operation_commits.c.operation_id,
                    operation_commits.c.sha,
                    operation_commits.c.committed_at,
                    operation_commits.c.subject,
                ).where(operation_commits.c.operation_id.in_(ids))
            ):
                commits.setdefault(op_id, []).append(DeployedCommit(sha, committed_at, subject))
        out = []
        for row in found:
            fields = dict(zip(_NAMES, row, strict=True))
            op_id = fields["id"]
            out.append(
                Operation(
                    **fields,
                    changes=tuple(changes.get(op_id, ())),
                    commits=tuple(commits.get(op_id, ())),
                )
            )
        return out

    def dora(
        self,
        env: str,
        app: str | None = None,
        *,
        since: datetime,
        until: datetime | None = None,
        failure_window: timedelta = FAILURE_WINDOW,
        drift_threshold: timedelta = DRIFT_THRESHOLD,
    ) -> DoraReport:
        """The DORA figures of ``env`` (``app``) for ``[since, until]`` (until: now).
        Operations up to ``failure_window`` before ``since`` are read as context."""
        settings = DoraSettings(
            since=since,
            until=until or self._db.now(),
            failure_window=failure_window,
            drift_threshold=drift_threshold,
        )
        ops = self.dora_operations(
            env, app, settings.since - settings.failure_window, settings.until
        )
        return compute(ops, env, settings, app=app)
