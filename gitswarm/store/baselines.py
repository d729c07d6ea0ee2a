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
from gitswarm.store.schema import baselines


def _baseline(row: Mapping[Any, Any]) -> Baseline:
    return Baseline(
        app=row["app"],
        env=row["env"],
        service=row["service"],
        spec=row["spec"],
        rendered=row["rendered"],
        version=row["version"],
        spec_hash=row["spec_hash"],
        revision=row["revision"],
        updated_at=row["updated_at"],
    )


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
        return _baseline(row)

    def baselines(self, app: str, env: str) -> dict[str, Baseline]:
        """The baselines of every service of ``app`` in ``env``, by service name."""
        with self._db.read(f"read baselines of {app}/{env}") as conn:
            rows = conn.execute(
                sa.select(baselines)
                .where(baselines.c.app == app, baselines.c.env == env)
                .order_by(baselines.c.service)
            ).mappings()
            return {row["service"]: _baseline(row) for row in rows}

    def all_baselines(self, *, specs: bool = True) -> dict[tuple[str, str], dict[str, Baseline]]:
        """Every baseline, by (app, env) then service name: one read for the agent's
        drift round, instead of one per app (1,000 apps: 1,000 reads; bench/ issue 18).
        ``specs=False``: without ``spec`` and ``rendered`` (left empty), whose JSON was
        most of that read (0.5 s of CPU for 5,000 services): a service whose version is
        the baseline's has not drifted, and any other one then looks drifted, for the
        caller to read in full."""
        out: dict[tuple[str, str], dict[str, Baseline]] = {}
        if specs:
            columns = list(baselines.c)
        else:
            columns = [c for c in baselines.c if c.name not in ("spec", "rendered")]
        order = (baselines.c.app, baselines.c.env, baselines.c.service)
        with self._db.read("read all baselines") as conn:
            for row in conn.execute(sa.select(*columns).order_by(*order)).mappings():
                light: dict[str, Any] = {} if specs else {"spec": {}, "rendered": {}}
                baseline = _baseline({**row, **light})
                out.setdefault((row["app"], row["env"]), {})[row["service"]] = baseline
        return out

    def delete_baseline(self, app: str, env: str, service: str | None = None) -> int:
        """Forget one service's baseline (pruned), or all of ``app`` in ``env`` with None;
        how many were removed."""
        query = sa.delete(baselines).where(baselines.c.app == app, baselines.c.env == env)
        if service is not None:
            query = query.where(baselines.c.service == service)
        with self._db.write(f"delete baselines of {app}/{env}") as conn:
            return conn.execute(query).rowcount
