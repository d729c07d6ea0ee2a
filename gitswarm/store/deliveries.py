"""Webhook deliveries already acted on: the memory behind the API's replay refusal.

api/webhook_routes.py claims a delivery's keys before it triggers anything (through
``ApiSettings.deliveries``, which `gitswarm serve` points here) and releases them when
the trigger fails. Keys are digests, never a body or a signature. Each claim also
prunes the keys older than ``keep``, so the table holds about a week of deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa

from gitswarm.store.db import Database
from gitswarm.store.schema import webhook_deliveries

# Longer than forges let a delivery be redelivered (github.com: 3 days, GHES: 7).
KEEP_DELIVERIES = timedelta(days=7)


class DeliveriesMixin:
    _db: Database

    def claim_webhook_delivery(
        self, provider: str, keys: Sequence[str], *, keep: timedelta = KEEP_DELIVERIES
    ) -> bool:
        """Remember ``keys`` of one delivery from ``provider``; True when none of them was
        seen within ``keep`` (act on it), False for a repeat. Atomic: of two agents or
        requests racing with the same delivery, exactly one gets True."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return True
        now = self._db.now()
        table = webhook_deliveries
        insert = (
            self._db.insert(table)
            .values([{"provider": provider, "key": k, "received_at": now} for k in unique])
            .on_conflict_do_nothing(index_elements=[table.c.provider, table.c.key])
            .returning(table.c.key)
        )
        with self._db.write(f"remember a {provider} webhook delivery") as conn:
            conn.execute(sa.delete(table).where(table.c.received_at < now - keep))
            inserted = conn.execute(insert).scalars().all()
        return len(inserted) == len(unique)

    def release_webhook_delivery(self, provider: str, keys: Sequence[str]) -> None:
        """Forget ``keys`` of a delivery that could not be acted on: its redelivery is new."""
        table = webhook_deliveries
        with self._db.write(f"forget a {provider} webhook delivery") as conn:
            conn.execute(
                sa.delete(table).where(table.c.provider == provider, table.c.key.in_(list(keys)))
            )
