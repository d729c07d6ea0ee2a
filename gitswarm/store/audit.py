"""The audit trail: who did what to which object, through the API or the CLI (SPEC
section 6: every action audited). api/ and cli/ write it; the dashboard reads it.
``details`` carries context such as the environment or the revision, never a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gitswarm.model.operation import AuditEvent
from gitswarm.store.db import Database
from gitswarm.store.queries import aware
from gitswarm.store.schema import audit_events


class AuditMixin:
    _db: Database

    def audit(
        self, actor: str, action: str, target: str, details: Mapping[str, Any] | None = None
    ) -> int:
        """Record that ``actor`` did ``action`` to ``target``; the event's id."""
        with self._db.write(f"audit {action}") as conn:
            event_id: int = conn.execute(
                sa.insert(audit_events)
                .values(
                    at=self._db.now(),
                    actor=actor,
                    action=action,
                    target=target,
                    details=dict(details or {}),
                )
                .returning(audit_events.c.id)
            ).scalar_one()
        return event_id

    def audit_events(
        self,
        *,
        limit: int | None = 100,
        actor: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEvent]:
        """Audit events, newest first."""
        query = sa.select(audit_events).order_by(audit_events.c.id.desc())
        if actor is not None:
            query = query.where(audit_events.c.actor == actor)
        if target is not None:
            query = query.where(audit_events.c.target == target)
        if since is not None:
            query = query.where(audit_events.c.at >= aware(since, "since"))
        if limit is not None:
            if limit < 1:
                raise ValueError(f"limit must be positive, not {limit}")
            query = query.limit(limit)
        with self._db.read("read audit events") as conn:
            return [
                AuditEvent(
                    id=row["id"],
                    at=row["at"],
                    actor=row["actor"],
                    action=row["action"],
                    target=row["target"],
                    details=dict(row["details"]),
                )
                for row in conn.execute(query).mappings()
            ]
