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
from gitswarm.store import queries
from gitswarm.store.db import Database
from gitswarm.store.operations import run
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
            return queries.baselines_from(run(conn, queries.baselines(app, env)))

    def all_baselines(self, *, specs: bool = True) -> dict[tuple[str, str], dict[str, Baseline]]:
        """Every baseline, by (app, env) then service name: one read for the agent's
        drift round, instead of one per app (1,000 apps: 1,000 reads; bench/ issue 18).
        ``specs=False``: without ``spec`` and ``rendered`` (left empty), whose JSON was
        most of that read (0.5 s of CPU for 5,000 services): a service whose version is
        the baseline's has not drifted, and any other one then looks drifted, for the
        caller to read in full."""
        light = () if specs else ("spec", "rendered")
        columns = [f"'{{}}' AS {c}" if c in light else c for c in queries.BASELINE_COLUMNS]
        query = queries.Query(
            f"SELECT {', '.join(columns)} FROM baselines "  # noqa: S608 - fixed text
            "ORDER BY app, env, service"
        )
        with self._db.read("read all baselines") as conn:
            rows = run(conn, query)
        groups: dict[tuple[str, str], list[Mapping[Any, Any]]] = {}
        for row in rows:
            groups.setdefault((row["app"], row["env"]), []).append(row)
        return {key: queries.baselines_from(group) for key, group in groups.items()}

    def delete_baseline(self, app: str, env: str, service: str | None = None) -> int:
        """Forget one service's baseline (pruned), or all of ``app`` in ``env`` with None;
        how many were removed."""
        query = sa.delete(baselines).where(baselines.c.app == app, baselines.c.env == env)
        if service is not None:
            query = query.where(baselines.c.service == service)
        with self._db.write(f"delete baselines of {app}/{env}") as conn:
            return conn.execute(query).rowcount
