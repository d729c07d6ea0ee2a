"""Notification dedupe: one notification per distinct failure, not one per loop.

notify/ asks ``record_notification`` before sending: the store keeps the fingerprint of
the last notification per (app, environment, event kind) and answers True only when the
fingerprint changed. When the failure clears, ``forget_notification`` lets the same
failure notify again should it come back.
"""

from __future__ import annotations

import sqlalchemy as sa

from gitswarm.store.db import Database
from gitswarm.store.schema import notifications


class NotificationsMixin:
    _db: Database

    def record_notification(self, app: str, env: str, kind: str, fingerprint: str) -> bool:
        """Remember ``fingerprint`` as the last notification of ``kind``; True when it is
        new (nothing recorded yet, or a different fingerprint): send it. Atomic, so of
        two agents racing on the same event only one gets True."""
        now = self._db.now()
        stmt = self._db.insert(notifications).values(
            app=app, env=env, kind=kind, fingerprint=fingerprint, sent_at=now
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[notifications.c.app, notifications.c.env, notifications.c.kind],
            set_={"fingerprint": stmt.excluded.fingerprint, "sent_at": stmt.excluded.sent_at},
            where=notifications.c.fingerprint != stmt.excluded.fingerprint,
        ).returning(notifications.c.kind)
        with self._db.write(f"record notification {kind} of {app}/{env}") as conn:
            return conn.execute(upsert).first() is not None

    def forget_notification(self, app: str, env: str, kind: str | None = None) -> int:
        """Forget the last notification of ``kind`` (or of every kind, with None)."""
        query = sa.delete(notifications).where(
            notifications.c.app == app, notifications.c.env == env
        )
        if kind is not None:
            query = query.where(notifications.c.kind == kind)
        with self._db.write(f"forget notifications of {app}/{env}") as conn:
            return conn.execute(query).rowcount
