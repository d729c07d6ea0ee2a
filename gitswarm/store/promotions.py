"""Promotion requests and the approvals they wait for (SPEC section 4).

The promotion code creates a request, runs the gates, and commits once the target's rules
are met (N distinct approvers): the rules live there, the store only keeps the record. A user
decides once per promotion; ``set_promotion_status`` can compare-and-set, so two approvals
arriving together cannot both commit the same promotion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from gitswarm.errors import NotFoundError, UsageError
from gitswarm.model.operation import (
    DECISIONS,
    PROMOTION_STATUSES,
    Decision,
    DecisionKind,
    Promotion,
    PromotionStatus,
)
from gitswarm.store.db import Database
from gitswarm.store.queries import check
from gitswarm.store.schema import promotion_decisions, promotions


def _load(conn: sa.Connection, query: sa.Select[Any]) -> list[Promotion]:
    rows = conn.execute(query).mappings().all()
    if not rows:
        return []
    by_id: dict[int, list[Decision]] = {}
    decisions = conn.execute(
        sa.select(promotion_decisions)
        .where(promotion_decisions.c.promotion_id.in_([row["id"] for row in rows]))
        .order_by(promotion_decisions.c.at, promotion_decisions.c.username)
    ).mappings()
    for d in decisions:
        by_id.setdefault(d["promotion_id"], []).append(
            Decision(
                promotion_id=d["promotion_id"],
                user=d["username"],
                decision=d["decision"],
                comment=d["comment"],
                at=d["at"],
            )
        )
    return [
        Promotion(
            id=row["id"],
            app=row["app"],
            from_env=row["from_env"],
            to_env=row["to_env"],
            images=dict(row["images"]),
            status=row["status"],
            requested_by=row["requested_by"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            gates=tuple(row["gates"]),
            commit_sha=row["commit_sha"],
            message=row["message"],
            decisions=tuple(by_id.get(row["id"], ())),
        )
        for row in rows
    ]


def _statuses(value: PromotionStatus | Iterable[PromotionStatus]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    return [check(s, PROMOTION_STATUSES, "promotion status") for s in items]


class PromotionsMixin:
    _db: Database

    def create_promotion(
        self,
        app: str,
        from_env: str,
        to_env: str,
        *,
        images: Mapping[str, str],
        requested_by: str,
        gates: Sequence[Mapping[str, Any]] = (),
        message: str = "",
    ) -> Promotion:
        """Record a new pending promotion request. Promotions are dated by the store's
        shared clock (PostgreSQL's on PostgreSQL), the one their expiry is checked by."""
        now = self._db.lease_now()
        with self._db.write(f"create promotion of {app} to {to_env}") as conn:
            promotion_id = conn.execute(
                sa.insert(promotions)
                .values(
                    app=app,
                    from_env=from_env,
                    to_env=to_env,
                    images=dict(images),
                    status="pending",
                    requested_by=requested_by,
                    created_at=now,
                    updated_at=now,
                    gates=[dict(g) for g in gates],
                    commit_sha=None,
                    message=message,
                )
                .returning(promotions.c.id)
            ).scalar_one()
            return _load(conn, sa.select(promotions).where(promotions.c.id == promotion_id))[0]

    def get_promotion(self, promotion_id: int) -> Promotion:
        with self._db.read(f"read promotion {promotion_id}") as conn:
            found = _load(conn, sa.select(promotions).where(promotions.c.id == promotion_id))
        if not found:
            raise NotFoundError(f"promotion {promotion_id} does not exist")
        return found[0]

    def pending_promotions(
        self, app: str | None = None, to_env: str | None = None
    ) -> list[Promotion]:
        """Promotions waiting for approval, oldest first."""
        query = (
            sa.select(promotions).where(promotions.c.status == "pending").order_by(promotions.c.id)
        )
        if app is not None:
            query = query.where(promotions.c.app == app)
        if to_env is not None:
            query = query.where(promotions.c.to_env == to_env)
        with self._db.read("read pending promotions") as conn:
            return _load(conn, query)

    def promotions(self, app: str | None = None, limit: int = 200) -> list[Promotion]:
        """Every promotion (any status), newest first."""
        query = sa.select(promotions).order_by(promotions.c.id.desc()).limit(limit)
        if app is not None:
            query = query.where(promotions.c.app == app)
        with self._db.read("read promotions") as conn:
            return _load(conn, query)

    def decide_promotion(
        self, promotion_id: int, user: str, decision: DecisionKind, comment: str = ""
    ) -> Promotion:
        """Record ``user``'s approval or rejection of a pending promotion; the promotion
        with every decision so far. ``UsageError`` if the user already decided or the
        promotion is no longer pending. Who may decide is the promotion code's call."""
        check(decision, DECISIONS, "decision")
        with self._db.write(f"decide promotion {promotion_id}") as conn:
            # Row lock on PostgreSQL: decisions on one promotion queue up (SQLite's
            # BEGIN IMMEDIATE already serialises every writer).
            status = conn.execute(
                sa.select(promotions.c.status)
                .where(promotions.c.id == promotion_id)
                .with_for_update()
            ).scalar_one_or_none()
            if status is None:
                raise NotFoundError(f"promotion {promotion_id} does not exist")
            if status != "pending":
                raise UsageError(f"promotion {promotion_id} is {status}, not pending")
            earlier = conn.execute(
                sa.select(promotion_decisions.c.decision).where(
                    promotion_decisions.c.promotion_id == promotion_id,
                    promotion_decisions.c.username == user,
                )
            ).scalar_one_or_none()
            if earlier is not None:
                raise UsageError(
                    f"{user} already decided on promotion {promotion_id} ({earlier}); "
                    "a user decides once"
                )
            now = self._db.lease_now()
            conn.execute(
                sa.insert(promotion_decisions).values(
                    promotion_id=promotion_id,
                    username=user,
                    decision=decision,
                    comment=comment,
                    at=now,
                )
            )
            conn.execute(
                sa.update(promotions).where(promotions.c.id == promotion_id).values(updated_at=now)
            )
            return _load(conn, sa.select(promotions).where(promotions.c.id == promotion_id))[0]

    def set_promotion_status(
        self,
        promotion_id: int,
        status: PromotionStatus,
        *,
        expect: PromotionStatus | Iterable[PromotionStatus] | None = None,
        commit_sha: str | None = None,
        gates: Sequence[Mapping[str, Any]] | None = None,
        message: str | None = None,
    ) -> bool:
        """Move a promotion to ``status`` (and record its commit, gate results, message
        when given). With ``expect``, only if its status is one of those: False when it
        is not (someone else moved it first)."""
        check(status, PROMOTION_STATUSES, "promotion status")
        values: dict[str, Any] = {"status": status, "updated_at": self._db.lease_now()}
        if commit_sha is not None:
            values["commit_sha"] = commit_sha
        if gates is not None:
            values["gates"] = [dict(g) for g in gates]
        if message is not None:
            values["message"] = message
        query = sa.update(promotions).where(promotions.c.id == promotion_id).values(**values)
        if expect is not None:
            query = query.where(promotions.c.status.in_(_statuses(expect)))
        with self._db.write(f"set status of promotion {promotion_id}") as conn:
            if conn.execute(query).rowcount == 1:
                return True
            exists = conn.execute(
                sa.select(promotions.c.id).where(promotions.c.id == promotion_id)
            ).first()
        if exists is None:
            raise NotFoundError(f"promotion {promotion_id} does not exist")
        return False
