"""The current status of every app × environment, and the revisions known to be bad.

Status: reconcile/ and the drift and health watchers write it; the CLI's ``status``, the
API and the dashboard read it without touching Docker or Git. Each writer changes only
the fields it knows (the drift watcher the sync verdict, the health watcher the health),
in one atomic upsert, so concurrent writers never undo each other.

Bad revisions: when a deploy fails and auto-rollback reverts it, reconcile/ marks the
revision bad so the loop does not re-apply it until Git moves on.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa

from gitswarm.errors import Reason
from gitswarm.model.operation import (
    HEALTH_STATUSES,
    OPERATION_RESULTS,
    SYNC_STATUSES,
    AppStatus,
    HealthStatus,
    OperationResult,
    SyncStatus,
)
from gitswarm.store import queries
from gitswarm.store.db import Database
from gitswarm.store.operations import run
from gitswarm.store.queries import check
from gitswarm.store.schema import app_status, bad_revisions


class Keep(enum.Enum):
    """The type of ``KEEP``."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP  # set_status: leave this field as it is


def _status(row: sa.RowMapping) -> AppStatus:
    return queries.statuses_from([row])[0]


class StatusMixin:
    _db: Database

    def set_status(
        self,
        app: str,
        env: str,
        *,
        sync: SyncStatus | Keep = KEEP,
        health: HealthStatus | Keep = KEEP,
        last_result: OperationResult | Keep | None = KEEP,
        operation_id: int | Keep | None = KEEP,
        revision: str | Keep | None = KEEP,
        reason: Reason | Keep | None = KEEP,
        message: str | Keep = KEEP,
        drift: Mapping[str, Any] | Keep = KEEP,
        render_inputs: Sequence[tuple[str, str]] | Keep | None = KEEP,
        render_digest: str | Keep | None = KEEP,
    ) -> AppStatus:
        """Update the given fields of the status of ``app`` in ``env`` (the others keep
        their value; a new status starts Unknown/Unknown); the status after the update.
        A new ``revision`` without its render's inputs and digest forgets the old ones."""
        given: dict[str, Any] = {
            "sync": sync,
            "health": health,
            "last_result": last_result,
            "operation_id": operation_id,
            "revision": revision,
            "reason": reason if isinstance(reason, Keep | None) else str(reason),
            "message": message,
            "drift": drift,
            "render_inputs": render_inputs,
            "render_digest": render_digest,
        }
        changes = {k: v for k, v in given.items() if not isinstance(v, Keep)}
        if "revision" in changes and "render_digest" not in changes:
            changes["render_inputs"] = changes["render_digest"] = None
        if changes.get("render_inputs") is not None:
            changes["render_inputs"] = [[kind, path] for kind, path in changes["render_inputs"]]
        if "sync" in changes:
            check(changes["sync"], SYNC_STATUSES, "sync status")
        if "health" in changes:
            check(changes["health"], HEALTH_STATUSES, "health")
        if changes.get("last_result") is not None:
            check(changes["last_result"], OPERATION_RESULTS, "last result")
        if "drift" in changes:
            changes["drift"] = dict(changes["drift"])
        now = self._db.now()
        fresh: dict[str, Any] = {
            "sync": "Unknown",
            "health": "Unknown",
            "last_result": None,
            "operation_id": None,
            "revision": None,
            "reason": None,
            "message": "",
            "drift": {},
            "render_inputs": None,
            "render_digest": None,
        }
        fresh.update(changes)
        stmt = self._db.insert(app_status).values(app=app, env=env, updated_at=now, **fresh)
        upsert = stmt.on_conflict_do_update(
            index_elements=[app_status.c.app, app_status.c.env],
            set_={name: stmt.excluded[name] for name in [*changes, "updated_at"]},
        ).returning(*app_status.c)
        with self._db.write(f"set status of {app}/{env}") as conn:
            row = conn.execute(upsert).mappings().one()
        return _status(row)

    def get_status(self, app: str, env: str) -> AppStatus | None:
        with self._db.read(f"read status of {app}/{env}") as conn:
            found = queries.statuses_from(run(conn, queries.statuses(app, env)))
        return found[0] if found else None

    def all_statuses(self) -> list[AppStatus]:
        """Every known app × environment, by app then environment name."""
        with self._db.read("read statuses") as conn:
            return queries.statuses_from(run(conn, queries.statuses()))

    def advance_revisions(
        self, moves: Sequence[tuple[str, str, str]], revision: str, message: str
    ) -> set[tuple[str, str]]:
        """Move each (app, env, from revision) to ``revision`` — a commit that leaves its
        inputs as they were — in one transaction, where the status still says Synced
        after a success at that revision (a sync or drift that wrote since wins). Returns
        the (app, env) moved."""
        moved: set[tuple[str, str]] = set()
        if not moves:
            return moved
        now = self._db.now()
        # One statement, built once, run per row with its values: building it per row
        # was most of the cost at 1,000 apps (issue 18).
        update = (
            sa.update(app_status)
            .where(
                app_status.c.app == sa.bindparam("m_app"),
                app_status.c.env == sa.bindparam("m_env"),
                app_status.c.revision == sa.bindparam("m_before"),
                app_status.c.sync == "Synced",
                app_status.c.last_result == "Succeeded",
            )
            .values(revision=revision, message=message, updated_at=now)
        )
        with self._db.write(f"advance {len(moves)} statuses to {revision[:12]}") as conn:
            for app, env, before in moves:
                row = {"m_app": app, "m_env": env, "m_before": before}
                if conn.execute(update, row).rowcount == 1:
                    moved.add((app, env))
        return moved

    def delete_status(self, app: str, env: str) -> bool:
        """Forget an app × environment that left Git; False if there was none."""
        with self._db.write(f"delete status of {app}/{env}") as conn:
            deleted = conn.execute(
                sa.delete(app_status).where(app_status.c.app == app, app_status.c.env == env)
            ).rowcount
        return deleted == 1

    # --- bad revisions -------------------------------------------------------------------

    def mark_bad(
        self, app: str, env: str, revision: str, reason: Reason, message: str = ""
    ) -> None:
        """Remember that ``revision`` failed in ``env`` (marking it again updates why)."""
        now = self._db.now()
        stmt = self._db.insert(bad_revisions).values(
            app=app, env=env, revision=revision, reason=str(reason), message=message, marked_at=now
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[bad_revisions.c.app, bad_revisions.c.env, bad_revisions.c.revision],
            set_={
                "reason": stmt.excluded.reason,
                "message": stmt.excluded.message,
                "marked_at": stmt.excluded.marked_at,
            },
        )
        with self._db.write(f"mark {revision} bad") as conn:
            conn.execute(upsert)

    def is_bad(self, app: str, env: str, revision: str) -> bool:
        with self._db.read(f"read bad revision {revision}") as conn:
            found = conn.execute(
                sa.select(sa.literal(1)).where(
                    bad_revisions.c.app == app,
                    bad_revisions.c.env == env,
                    bad_revisions.c.revision == revision,
                )
            ).first()
        return found is not None

    def clear_bad(self, app: str, env: str, revision: str | None = None) -> int:
        """Let a bad revision (or, with None, all of them for ``app`` in ``env``) be
        applied again; how many marks were removed."""
        query = sa.delete(bad_revisions).where(
            bad_revisions.c.app == app, bad_revisions.c.env == env
        )
        if revision is not None:
            query = query.where(bad_revisions.c.revision == revision)
        with self._db.write("clear bad revisions") as conn:
            return conn.execute(query).rowcount
