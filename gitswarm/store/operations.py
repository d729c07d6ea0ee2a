"""Operations: the history and audit trail of every sync, rollback, drift, heal, promotion,
approval and policy violation (SPEC section 2 step 8), and the source of DORA metrics.

reconcile/ starts an operation once it holds the app's sync lock and finishes it on every
exit path; a promotion and the drift watcher record theirs in one call. The CLI, the API and
the dashboard read the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gitswarm.errors import NotFoundError, Reason
from gitswarm.model.operation import (
    CHANGE_ACTIONS,
    DEPLOY_KINDS,
    OPERATION_KINDS,
    OPERATION_RESULTS,
    TRIGGERS,
    DeployedCommit,
    Operation,
    OperationKind,
    OperationResult,
    ServiceChange,
    Trigger,
)
from gitswarm.store import queries
from gitswarm.store.db import Database
from gitswarm.store.queries import aware, check
from gitswarm.store.schema import (
    UTCDateTime,
    locks,
    operation_changes,
    operation_commits,
    operations,
)


def _stored(reason: Reason | None) -> str | None:
    """A reason as the store keeps it: its plain string value."""
    return None if reason is None else str(reason)


def changed_count(changes: Sequence[ServiceChange]) -> int:
    """The services ``changes`` created, changed or removed: the ``changed`` column
    (migration 0007), which `gitswarm dora` filters on instead of probing the changes."""
    return sum(1 for change in changes if change.action != "unchanged")


def _changes_rows(op_id: int, changes: Sequence[ServiceChange]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    rows = []
    for change in changes:
        check(change.action, CHANGE_ACTIONS, "change action")
        if change.service in seen:
            raise ValueError(f"service {change.service!r} appears twice in the changes")
        seen.add(change.service)
        rows.append(
            {
                "operation_id": op_id,
                "service": change.service,
                "action": change.action,
                "fields": list(change.fields),
            }
        )
    return rows


# A commit subject is kept for fix-forward markers (gitswarm/dora/), bounded.
MAX_SUBJECT = 200


def _commit_rows(op_id: int, commits: Sequence[DeployedCommit]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for commit in commits:
        aware(commit.committed_at, f"commit time of {commit.sha}")
        rows.setdefault(
            commit.sha,
            {
                "operation_id": op_id,
                "sha": commit.sha,
                "committed_at": commit.committed_at,
                "subject": commit.subject[:MAX_SUBJECT],
            },
        )
    return list(rows.values())


def load_commits(conn: sa.Connection, ids: Sequence[int]) -> dict[int, list[DeployedCommit]]:
    """The recorded commits of the operations ``ids``, by operation."""
    by_op: dict[int, list[DeployedCommit]] = {}
    if not ids:
        return by_op
    rows = conn.execute(
        sa.select(operation_commits)
        .where(operation_commits.c.operation_id.in_(ids))
        .order_by(operation_commits.c.operation_id, operation_commits.c.committed_at.desc())
    ).mappings()
    for row in rows:
        by_op.setdefault(row["operation_id"], []).append(
            DeployedCommit(row["sha"], row["committed_at"], row["subject"])
        )
    return by_op


def _load(
    conn: sa.Connection, query: sa.Select[Any] | queries.Query, *, with_commits: bool = False
) -> list[Operation]:
    """The operations ``query`` selects, with their changes (and commits): built by
    queries.py's one reader of operation rows, which quick.py shares."""
    rows = (
        run(conn, query)
        if isinstance(query, queries.Query)
        else conn.execute(query).mappings().all()
    )
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    commits = load_commits(conn, ids) if with_commits else {}
    return queries.operations_from(rows, run(conn, queries.changes(ids)), commits)


def run(conn: sa.Connection, query: queries.Query) -> Sequence[sa.RowMapping]:
    """A queries.py query through SQLAlchemy: its times bound as the store keeps them."""
    text = sa.text(query.sql).bindparams(
        *(sa.bindparam(name, type_=UTCDateTime) for name in sorted(query.times))
    )
    return conn.execute(text, query.params).mappings().all()


class OperationsMixin:
    _db: Database

    def start_operation(
        self,
        kind: OperationKind,
        app: str,
        env: str,
        *,
        holder: str,
        trigger: Trigger,
        actor: str | None = None,
        revision: str | None = None,
        previous_revision: str | None = None,
        author: str | None = None,
        commit_time: datetime | None = None,
        dry_run: bool = False,
        message: str = "",
    ) -> int:
        """Record an operation as Running; its id. Start it while ``holder`` holds a lease
        (the app's sync lock): ``mark_interrupted`` treats a Running operation whose
        holder has no live lease as abandoned."""
        check(kind, OPERATION_KINDS, "operation kind")
        check(trigger, TRIGGERS, "trigger")
        aware(commit_time, "commit time")
        with self._db.write("start operation") as conn:
            op_id: int = conn.execute(
                sa.insert(operations)
                .values(
                    kind=kind,
                    app=app,
                    env=env,
                    trigger=trigger,
                    actor=actor,
                    holder=holder,
                    revision=revision,
                    previous_revision=previous_revision,
                    author=author,
                    commit_time=commit_time,
                    started_at=self._db.now(),
                    result="Running",
                    message=message,
                    dry_run=dry_run,
                )
                .returning(operations.c.id)
            ).scalar_one()
        return op_id

    def finish_operation(
        self,
        op_id: int,
        result: OperationResult,
        reason: Reason | None = None,
        message: str = "",
        changes: Sequence[ServiceChange] = (),
        commits: Sequence[DeployedCommit] = (),
    ) -> None:
        """Record how a Running operation ended, with the commits it brought (a
        successful deployment's ``git log previous..revision``). An operation already
        marked Interrupted may still be finished by its (slow, not dead) process: its
        own word is better."""
        check(result, OPERATION_RESULTS, "result")
        if result == "Running":
            raise ValueError("finish_operation needs a final result, not Running")
        rows = _changes_rows(op_id, changes)
        commit_rows = _commit_rows(op_id, commits)
        at = self._db.instant()
        with self._db.write("finish operation") as conn:
            updated = conn.execute(
                sa.update(operations)
                .where(
                    operations.c.id == op_id,
                    operations.c.result.in_(("Running", "Interrupted")),
                )
                .values(
                    result=result,
                    reason=_stored(reason),
                    message=message,
                    finished_at=at.wall,
                    finished_boot=at.boot,
                    finished_mono=at.mono,
                    changed=changed_count(changes),
                )
            ).rowcount
            if updated == 0:
                current = conn.execute(
                    sa.select(operations.c.result).where(operations.c.id == op_id)
                ).scalar_one_or_none()
                if current is None:
                    raise NotFoundError(f"operation {op_id} does not exist")
                raise ValueError(f"operation {op_id} is already finished ({current})")
            conn.execute(
                sa.delete(operation_changes).where(operation_changes.c.operation_id == op_id)
            )
            if rows:
                conn.execute(sa.insert(operation_changes), rows)
            conn.execute(
                sa.delete(operation_commits).where(operation_commits.c.operation_id == op_id)
            )
            if commit_rows:
                conn.execute(sa.insert(operation_commits), commit_rows)

    def record_operation(
        self,
        kind: OperationKind,
        app: str,
        env: str,
        result: OperationResult,
        *,
        trigger: Trigger,
        actor: str | None = None,
        holder: str | None = None,
        revision: str | None = None,
        previous_revision: str | None = None,
        author: str | None = None,
        commit_time: datetime | None = None,
        reason: Reason | None = None,
        message: str = "",
        changes: Sequence[ServiceChange] = (),
        dry_run: bool = False,
    ) -> int:
        """Record an operation that happened at once (a drift seen, an approval given):
        started and finished now. Its id."""
        check(kind, OPERATION_KINDS, "operation kind")
        check(trigger, TRIGGERS, "trigger")
        check(result, OPERATION_RESULTS, "result")
        if result == "Running":
            raise ValueError("record_operation records finished operations; use start_operation")
        aware(commit_time, "commit time")
        at = self._db.instant()
        now = at.wall
        with self._db.write("record operation") as conn:
            op_id: int = conn.execute(
                sa.insert(operations)
                .values(
                    kind=kind,
                    app=app,
                    env=env,
                    trigger=trigger,
                    actor=actor,
                    holder=holder,
                    revision=revision,
                    previous_revision=previous_revision,
                    author=author,
                    commit_time=commit_time,
                    started_at=now,
                    finished_at=now,
                    finished_boot=at.boot,
                    finished_mono=at.mono,
                    result=result,
                    reason=_stored(reason),
                    message=message,
                    dry_run=dry_run,
                    changed=changed_count(changes),
                )
                .returning(operations.c.id)
            ).scalar_one()
            rows = _changes_rows(op_id, changes)
            if rows:
                conn.execute(sa.insert(operation_changes), rows)
        return op_id

    def get_operation(self, op_id: int) -> Operation:
        with self._db.read("read operation") as conn:
            found = _load(
                conn, sa.select(operations).where(operations.c.id == op_id), with_commits=True
            )
        if not found:
            raise NotFoundError(f"operation {op_id} does not exist")
        return found[0]

    def history(
        self,
        app: str | None = None,
        env: str | None = None,
        limit: int | None = 50,
        kinds: Iterable[OperationKind] | None = None,
        *,
        since: datetime | None = None,
    ) -> list[Operation]:
        """Operations, newest first; ``since`` keeps those started at or after it."""
        query = queries.history(app, env, limit, kinds, since)
        with self._db.read("read history") as conn:
            return _load(conn, query)

    def last_operation(
        self,
        app: str,
        env: str,
        kinds: Iterable[OperationKind] | None = None,
        *,
        include_dry_runs: bool = False,
    ) -> Operation | None:
        """The newest operation of ``app`` in ``env`` (of ``kinds``, when given)."""
        query = (
            sa.select(operations)
            .where(operations.c.app == app, operations.c.env == env)
            .order_by(operations.c.id.desc())
            .limit(1)
        )
        if kinds is not None:
            wanted = [check(k, OPERATION_KINDS, "operation kind") for k in kinds]
            query = query.where(operations.c.kind.in_(wanted))
        if not include_dry_runs:
            query = query.where(operations.c.dry_run.is_(False))
        with self._db.read("read last operation") as conn:
            found = _load(conn, query)
        return found[0] if found else None

    def last_successful_revision(
        self, app: str, env: str, *, exclude: Iterable[str] = ()
    ) -> str | None:
        """The revision of the newest deploy (sync, rollback or heal, not a dry run) that
        Succeeded, skipping the revisions in ``exclude`` (e.g. the current one, to find
        the one before it): what ``rollback --previous`` returns to."""
        query = (
            sa.select(operations.c.revision)
            .where(
                operations.c.app == app,
                operations.c.env == env,
                operations.c.kind.in_(DEPLOY_KINDS),
                operations.c.result == "Succeeded",
                operations.c.dry_run.is_(False),
                operations.c.revision.is_not(None),
            )
            .order_by(operations.c.id.desc())
            .limit(1)
        )
        skip = [exclude] if isinstance(exclude, str) else list(exclude)
        if skip:
            query = query.where(operations.c.revision.not_in(skip))
        with self._db.read("read last successful revision") as conn:
            revision: str | None = conn.execute(query).scalar_one_or_none()
        return revision

    def unfinished_operations(self) -> dict[tuple[str, str], int]:
        """(app, env) -> the id of its newest Running or Interrupted operation (an
        operation a dead agent did not finish: one index range, however long the
        history)."""
        query = (
            sa.select(operations.c.app, operations.c.env, sa.func.max(operations.c.id))
            .where(operations.c.result.in_(("Running", "Interrupted")))
            .group_by(operations.c.app, operations.c.env)
        )
        with self._db.read("read unfinished operations") as conn:
            rows = conn.execute(query).all()
        return {(app, env): int(op_id) for app, env, op_id in rows}

    def mark_interrupted(
        self,
        *,
        app: str | None = None,
        env: str | None = None,
        exclude_holder: str | None = None,
    ) -> list[int]:
        """Mark Running operations whose holder no longer holds any live lease as
        Interrupted (their process died: ``kill -9``, a crash, a lost host); their ids.

        Call it on start-up and after taking over an expired lock. Operations of
        ``exclude_holder`` (the caller) are left alone.
        """
        now = self._db.now()
        live_holders = sa.select(locks.c.holder).where(locks.c.expires_at > self._db.lease_now())
        query = (
            sa.update(operations)
            .where(
                operations.c.result == "Running",
                sa.or_(
                    operations.c.holder.is_(None),
                    operations.c.holder.not_in(live_holders),
                ),
            )
            .values(
                result="Interrupted",
                reason=Reason.INTERRUPTED,  # the process died while it was Running
                message="the process running it went away (its lock lease ended) "
                "before it finished",
                finished_at=now,
            )
            .returning(operations.c.id)
        )
        if app is not None:
            query = query.where(operations.c.app == app)
        if env is not None:
            query = query.where(operations.c.env == env)
        if exclude_holder is not None:
            query = query.where(
                sa.or_(operations.c.holder.is_(None), operations.c.holder != exclude_holder)
            )
        with self._db.write("mark interrupted operations") as conn:
            return sorted(conn.execute(query).scalars())
