"""Deployed-state baselines: each service's spec as gitswarm applied it, so drift
detection can tell a manual ``docker service update`` (the spec moved away from the
baseline) from gitswarm's own change.

reconcile/ reads the spec right after its own ``docker stack deploy`` and checks it
against the render (plan/applied.py) — never the state after the health wait, which
could hold a change made meanwhile — and saves it once the deploy converged; the drift
watcher reads it. The spec names secrets and configs, never their values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from gitswarm.model.operation import Baseline
from gitswarm.store.db import Database
from gitswarm.store.schema import baselines, from_row


class BaselinesMixin:
    _db: Database

    def save_baseline(
        self,
        app: str,
        env: str,
        service: str,
        *,
        spec: Mapping[str, Any],
        version: int,
        spec_hash: str,
        revision: str | None,
        rendered: Mapping[str, Any] | None = None,
    ) -> Baseline:
        """Store (or replace) the baseline of one service; the stored record. ``spec`` is
        the Spec gitswarm applied, ``version`` the service version at which the live spec
        was still that one (0: compare the spec), ``rendered`` the compose service as
        rendered for it."""
        now = self._db.now()
        stmt = self._db.insert(baselines).values(
            app=app,
            env=env,
            service=service,
            spec=dict(spec),
            rendered=dict(rendered or {}),
            version=version,
            spec_hash=spec_hash,
            revision=revision,
            updated_at=now,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[baselines.c.app, baselines.c.env, baselines.c.service],
            set_={
                name: stmt.excluded[name]
                for name in ("spec", "rendered", "version", "spec_hash", "revision", "updated_at")
            },
        ).returning(*baselines.c)
        with self._db.write(f"save baseline of {app}/{env}/{service}") as conn:
            row = conn.execute(upsert).mappings().one()
        return from_row(Baseline, row)

    def baselines(self, app: str, env: str) -> dict[str, Baseline]:
        """The baselines of every service of ``app`` in ``env``, by service name."""
        with self._db.read(f"read baselines of {app}/{env}") as conn:
            rows = conn.execute(
                sa.select(baselines)
                .where(baselines.c.app == app, baselines.c.env == env)
                .order_by(baselines.c.service)
            ).mappings()
            return {row["service"]: from_row(Baseline, row) for row in rows}

    def delete_baseline(self, app: str, env: str, service: str | None = None) -> int:
        """Forget one service's baseline (pruned), or all of ``app`` in ``env`` with None;
        how many were removed."""
        query = sa.delete(baselines).where(baselines.c.app == app, baselines.c.env == env)
        if service is not None:
            query = query.where(baselines.c.service == service)
        with self._db.write(f"delete baselines of {app}/{env}") as conn:
            return conn.execute(query).rowcount
