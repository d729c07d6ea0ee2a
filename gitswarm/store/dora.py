"""The history DORA metrics are computed from: one environment's operations in a window,
read lean (no messages, only the changes that changed something, the deployed commits),
handed to the pure ``gitswarm.dora.compute``. Called by `gitswarm dora` and the agent's
``GET /api/v1/dora``.

Three queries, each served by the index ``ix_operations_env_started_at`` (migration
0004): the operations, their service changes, their commits. bench/dora.py measures
them at a million operations.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from gitswarm.dora import DRIFT_THRESHOLD, FAILURE_WINDOW, DoraReport, DoraSettings, compute
from gitswarm.model.operation import DeployedCommit, Operation, ServiceChange
from gitswarm.store.db import Database
from gitswarm.store.operations import aware
from gitswarm.store.schema import operation_changes, operation_commits, operations

# The kinds DORA reads: deployments and heals (healthy states), drift records.
DORA_KINDS = ("sync", "rollback", "heal", "drift")

_COLUMNS = [
    operations.c[name]
    for name in (
        "id", "kind", "app", "env", "trigger", "actor", "holder", "revision", "author",
        "commit_time", "started_at", "finished_at", "result", "reason",
    )
]  # fmt: skip


class DoraMixin:
    _db: Database

    def dora_operations(
        self, env: str, app: str | None, since: datetime, until: datetime
    ) -> list[Operation]:
        """The operations of ``env`` (``app``) that started in ``[since, until]`` and
        matter to DORA (not dry runs), with the changes that changed something and the
        commits they brought; oldest first. Messages are left out."""
        aware(since, "since")
        aware(until, "until")
        where = [
            operations.c.env == env,
            operations.c.started_at >= since,
            operations.c.started_at <= until,
            operations.c.kind.in_(DORA_KINDS),
            operations.c.dry_run.is_(False),
        ]
        if app is not None:
            where.append(operations.c.app == app)
        ids = sa.select(operations.c.id).where(*where)
        changes: dict[int, list[ServiceChange]] = {}
        commits: dict[int, list[DeployedCommit]] = {}
        with self._db.read("read the history for DORA") as conn:
            rows = conn.execute(sa.select(*_COLUMNS).where(*where).order_by(operations.c.id))
            found: list[dict[str, Any]] = [dict(r) for r in rows.mappings()]
            for change in conn.execute(
                sa.select(
                    operation_changes.c.operation_id,
                    operation_changes.c.service,
                    operation_changes.c.action,
                ).where(
                    operation_changes.c.operation_id.in_(ids),
                    operation_changes.c.action != "unchanged",
                )
            ):
                changes.setdefault(change[0], []).append(ServiceChange(change[1], change[2]))
            for commit in conn.execute(
                sa.select(
                    operation_commits.c.operation_id,
                    operation_commits.c.sha,
                    operation_commits.c.committed_at,
                    operation_commits.c.subject,
                ).where(operation_commits.c.operation_id.in_(ids))
            ):
                commits.setdefault(commit[0], []).append(
                    DeployedCommit(commit[1], commit[2], commit[3])
                )
        return [
            Operation(
                **row,
                changes=tuple(changes.get(row["id"], ())),
                commits=tuple(commits.get(row["id"], ())),
            )
            for row in found
        ]

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
