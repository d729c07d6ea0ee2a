"""The history DORA metrics are computed from: one environment's operations in a window,
read lean (no messages, only the changes that changed something, the deployed commits),
handed to the pure ``gitswarm.dora.compute``. Called by `gitswarm dora` and the agent's
``GET /api/v1/dora``.

The window is read once, by ``ix_operations_env_started_at`` (migration 0004), keeping
only what can change a figure by the operation's own columns — ``changed`` (migration
0007) says whether it changed something, so no row's changes are probed — plus, by
``ix_operations_app_env_id``, the next healthy state after each failure. Then the
changes and commits of just those operations, by id. bench/dora.py measures it at a
million operations (bench/README.md has the figures and the plans behind them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from gitswarm.dora import DRIFT_THRESHOLD, FAILURE_WINDOW, DoraReport, DoraSettings, compute
from gitswarm.dora.compute import (
    DEPLOY_FAILURE_REASONS,
    DEPLOYMENT_KINDS,
    DRIFT_RESOLVED,
    HEALTHY_KINDS,
)
from gitswarm.model.operation import DeployedCommit, Operation, ServiceChange
from gitswarm.store.db import Database
from gitswarm.store.queries import aware
from gitswarm.store.schema import operation_changes, operation_commits, operations

# The columns DORA reads (not the message: the bulk of a row), in the order
# ``dora_operations`` unpacks them.
_COLUMNS = [
    operations.c[name]
    for name in (
        "id", "kind", "app", "env", "trigger", "actor", "holder", "revision", "author",
        "commit_time", "started_at", "finished_at", "result", "reason",
    )
]  # fmt: skip


# Ids per ``IN (...)``. They are rendered into the statement (integers the store itself
# handed out), so no backend's bound on parameters applies (SQLite's may be 999).
_CHUNK = 2000


def _in(column: sa.ColumnElement[int], ids: Sequence[int]) -> sa.ColumnElement[bool]:
    """``column IN ids`` (ids ascending), bounded by the first and the last: with a long
    list PostgreSQL's planner would rather scan the whole table than probe its index so
    many times; the range makes the index the cheap way for it too (ids of one window
    lie close together)."""
    listed = column.in_(sa.bindparam(None, list(ids), expanding=True, literal_execute=True))
    return sa.and_(column >= ids[0], column <= ids[-1], listed)


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for at in range(0, len(ids), _CHUNK):
        yield ids[at : at + _CHUNK]


def _changes(conn: sa.Connection, ids: Sequence[int]) -> dict[int, list[ServiceChange]]:
    """The changes that changed something of the operations ``ids``, by operation."""
    c = operation_changes.c
    out: dict[int, list[ServiceChange]] = {}
    for chunk in _chunks(ids):
        query = sa.select(c.operation_id, c.service, c.action).where(
            _in(c.operation_id, chunk), c.action != "unchanged"
        )
        for op_id, service, action in conn.execute(query):
            out.setdefault(op_id, []).append(ServiceChange(service, action))
    return out


def _commits(conn: sa.Connection, ids: Sequence[int]) -> dict[int, list[DeployedCommit]]:
    """The commits the operations ``ids`` brought, by operation."""
    c = operation_commits.c
    out: dict[int, list[DeployedCommit]] = {}
    for chunk in _chunks(ids):
        query = sa.select(c.operation_id, c.sha, c.committed_at, c.subject).where(
            _in(c.operation_id, chunk)
        )
        for op_id, sha, committed_at, subject in conn.execute(query):
            out.setdefault(op_id, []).append(DeployedCommit(sha, committed_at, subject))
    return out


def _open_before(conn: sa.Connection, env: str, apps: set[str], start: datetime) -> list[int]:
    """What a drift of ``apps`` still open at ``start`` needs read with the window, so
    that it is one drift that began before it, not a new one at its first record inside.
    For each app: its last drift record before ``start``, unless a heal or a
    DriftResolved record (for a record naming no services: any healthy state) ended it
    before ``start``; with the deployments after it that may have redeployed some of its
    services, or, for one naming none, the healthy state that ended it later. A seek or
    two per app (``ix_operations_app_env_kind_id``, migration 0007)."""
    o = operations
    ids: list[int] = []
    for app in sorted(apps):
        mine = [o.c.app == app, o.c.env == env, o.c.dry_run.is_(False)]
        last = conn.execute(
            sa.select(o.c.id, o.c.changed)
            .where(*mine, o.c.kind == "drift", o.c.started_at < start)
            .where(sa.or_(o.c.reason.is_(None), o.c.reason != DRIFT_RESOLVED))
            .order_by(o.c.id.desc())
            .limit(1)
        ).first()
        if last is None:
            continue
        last_id, named = last
        succeeded = [*mine, o.c.id > last_id, o.c.result == "Succeeded"]
        enders = [o.c.kind == "heal", sa.and_(o.c.kind == "drift", o.c.reason == DRIFT_RESOLVED)]
        if not named:  # as then: any healthy state ended it
            enders.append(o.c.kind.in_(sorted(HEALTHY_KINDS)))
        ender = conn.execute(
            sa.select(o.c.id, o.c.started_at)
            .where(*succeeded, sa.or_(*enders))
            .order_by(o.c.id)
            .limit(1)
        ).first()
        if ender is not None and ender[1] < start:
            continue  # over before the window
        ids.append(last_id)
        if not named:
            ids.extend([ender[0]] if ender is not None else [])
            continue
        ids.extend(
            conn.execute(
                sa.select(o.c.id).where(
                    *succeeded,
                    o.c.started_at < start,
                    o.c.kind.in_(sorted(DEPLOYMENT_KINDS)),
                    o.c.changed > 0,
                )
            ).scalars()
        )
    return ids


class DoraMixin:
    _db: Database

    def dora_operations(
        self, env: str, app: str | None, since: datetime, until: datetime
    ) -> list[Operation]:
        """What DORA needs of ``env`` (``app``) in ``[since, until]`` (by start), oldest
        first: every deployment (a sync or rollback that changed something, or failed
        after reaching the swarm), every successful heal, every drift record, and after
        each failed deployment (and each drift record that names no services) the next
        healthy state (a successful sync, rollback or heal) — not the many
        syncs that changed nothing between them, which cannot change any figure. With
        their changes that changed something and the commits they brought; messages
        left out."""
        aware(since, "since")
        aware(until, "until")
        o = operations
        base = [o.c.env == env, o.c.started_at >= since, o.c.started_at <= until]
        base.append(o.c.dry_run.is_(False))
        if app is not None:
            base.append(o.c.app == app)
        failed = sa.or_(
            o.c.result == "RolledBack",
            sa.and_(o.c.result == "Failed", o.c.reason.in_(sorted(DEPLOY_FAILURE_REASONS))),
        )
        deploying = o.c.kind.in_(sorted(DEPLOYMENT_KINDS))
        # `changed` is set with the changes (migration 0007): no probe of them per row.
        deployment = sa.and_(
            deploying, sa.or_(sa.and_(o.c.result == "Succeeded", o.c.changed > 0), failed)
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
        # A drift record naming its services ends by what is read anyway (its
        # DriftResolved record, a heal, a deployment: gitswarm/dora/); one naming none
        # (written before they were recorded) at the next healthy state.
        unnamed_drift = sa.and_(
            o.c.kind == "drift",
            o.c.changed == 0,
            sa.or_(o.c.reason.is_(None), o.c.reason != DRIFT_RESOLVED),
        )
        # Not correlated with the outer query: one set of ids, computed once.
        restoring = (
            sa.select(next_healthy)
            .correlate(None)
            .where(*base, sa.or_(sa.and_(deploying, failed), unnamed_drift))
        )
        wanted = sa.or_(
            deployment,
            sa.and_(o.c.kind == "heal", o.c.result == "Succeeded"),
            o.c.kind == "drift",
            o.c.id.in_(restoring),
        )
        query = sa.select(*_COLUMNS, o.c.changed).where(*base, wanted).order_by(o.c.id)
        with self._db.read("read the history for DORA") as conn:
            found = list(conn.execute(query).all())
            drifting = {row[2] for row in found if row[1] == "drift" and row[13] != DRIFT_RESOLVED}
            extra = set(_open_before(conn, env, drifting, since)) - {row[0] for row in found}
            if extra:
                more = conn.execute(
                    sa.select(*_COLUMNS, o.c.changed).where(_in(o.c.id, sorted(extra)))
                )
                found = sorted([*found, *more], key=lambda row: row[0])
            # Then by id, in chunks: the window is not evaluated again.
            changing = [row[0] for row in found if row[-1]]
            # (a failed deployment has no commits: the read finds none)
            deployed = [row[0] for row in found if row[-1] and row[1] in DEPLOYMENT_KINDS]
            changes = _changes(conn, changing)
            commits = _commits(conn, deployed)
        out = []
        for row in found:
            # Keywords, not a dict per row: this runs some 10,000 times (bench/dora.py).
            op_id = row[0]
            out.append(
                Operation(
                    id=op_id,
                    kind=row[1],
                    app=row[2],
                    env=row[3],
                    trigger=row[4],
                    actor=row[5],
                    holder=row[6],
                    revision=row[7],
                    author=row[8],
                    commit_time=row[9],
                    started_at=row[10],
                    finished_at=row[11],
                    result=row[12],
                    reason=row[13],
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
