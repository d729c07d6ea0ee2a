"""Holds after a rollback (SPEC 4: a rollback wins over automation). promote/ creates and
releases them; `gitswarm status`, `gitswarm hold list` and the API read them. One hold
per rollback operation, however many times the automation sees that rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from gitswarm.errors import NotFoundError
from gitswarm.model.promotion import Hold
from gitswarm.store import queries
from gitswarm.store.db import Database
from gitswarm.store.operations import run
from gitswarm.store.schema import from_row, promotion_holds


class HoldsMixin:
    _db: Database

    def create_hold(
        self,
        app: str,
        env: str,
        *,
        reason: str,
        created_by: str,
        images: Mapping[str, str] | None = None,
        operation_id: int | None = None,
        from_revision: str | None = None,
        to_revision: str | None = None,
    ) -> tuple[Hold, bool]:
        """The hold for this rollback (``operation_id``), created now if there was none;
        and whether it was created now."""
        with self._db.write(f"hold {app}/{env}") as conn:
            if operation_id is not None:
                row = (
                    conn.execute(
                        sa.select(promotion_holds).where(
                            promotion_holds.c.operation_id == operation_id
                        )
                    )
                    .mappings()
                    .first()
                )
                if row is not None:
                    return from_row(Hold, row), False
            values: dict[str, Any] = {
                "app": app,
                "env": env,
                "reason": reason,
                "images": dict(images or {}),
                "operation_id": operation_id,
                "from_revision": from_revision,
                "to_revision": to_revision,
                "created_by": created_by,
                "created_at": self._db.now(),
                "released_at": None,
                "released_by": None,
                "release_reason": "",
            }
            row = (
                conn.execute(
                    sa.insert(promotion_holds).values(**values).returning(*promotion_holds.c)
                )
                .mappings()
                .one()
            )
            return from_row(Hold, row), True

    def holds(
        self, app: str | None = None, env: str | None = None, *, active: bool | None = True
    ) -> list[Hold]:
        """Holds, newest first (``active=None``: released ones too)."""
        with self._db.read("read holds") as conn:
            return queries.holds_from(run(conn, queries.holds(app, env, active)))

    def hold_of_operation(self, operation_id: int) -> Hold | None:
        """The hold made for the rollback ``operation_id``, if one was."""
        with self._db.read(f"read the hold of operation {operation_id}") as conn:
            row = (
                conn.execute(
                    sa.select(promotion_holds).where(promotion_holds.c.operation_id == operation_id)
                )
                .mappings()
                .first()
            )
        return None if row is None else from_row(Hold, row)

    def get_hold(self, hold_id: int) -> Hold:
        with self._db.read(f"read hold {hold_id}") as conn:
            row = (
                conn.execute(sa.select(promotion_holds).where(promotion_holds.c.id == hold_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"hold {hold_id} does not exist")
        return from_row(Hold, row)

    def release_hold(self, hold_id: int, by: str, reason: str) -> bool:
        """Release an active hold; False when it was already released."""
        with self._db.write(f"release hold {hold_id}") as conn:
            done = conn.execute(
                sa.update(promotion_holds)
                .where(promotion_holds.c.id == hold_id, promotion_holds.c.released_at.is_(None))
                .values(released_at=self._db.now(), released_by=by, release_reason=reason)
            ).rowcount
            if done:
                return True
            exists = conn.execute(
                sa.select(promotion_holds.c.id).where(promotion_holds.c.id == hold_id)
            ).first()
        if exists is None:
            raise NotFoundError(f"hold {hold_id} does not exist")
        return False
