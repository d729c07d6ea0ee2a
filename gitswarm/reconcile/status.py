"""The live status of an application in an environment, as Argo CD shows it.

Sync: Git's head rendered and planned against the swarm (Synced when nothing would
change and nothing drifted). Health: the services' convergence right now (Healthy,
Progressing, Degraded, Missing). Plus what the store remembers: the last deployed
revision and the last operation. Called by ``gitswarm status`` / ``diff`` and the API.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from gitswarm.errors import GitswarmError
from gitswarm.health import assess
from gitswarm.model.operation import HealthStatus, SyncStatus
from gitswarm.plan import Plan, make_plan
from gitswarm.reconcile.sync import Reconciler, Rendered

RECENT = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class LiveStatus:
    app: str
    env: str
    stack: str | None
    head: str | None  # the revision Git says should run
    deployed: str | None  # the revision gitswarm last deployed successfully
    sync: SyncStatus
    health: HealthStatus
    last_result: str | None = None
    reason: str | None = None
    message: str = ""
    plan: Plan | None = None
    services: tuple[dict[str, Any], ...] = ()
    drift: tuple[dict[str, Any], ...] = ()
    orphans: tuple[str, ...] = ()
    error: GitswarmError | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "env": self.env,
            "stack": self.stack,
            "head": self.head,
            "deployed": self.deployed,
            "sync": self.sync,
            "health": self.health,
            "last_result": self.last_result,
            "reason": self.reason,
            "message": self.message,
            "services": list(self.services),
            "drift": list(self.drift),
            "orphans": list(self.orphans),
            "plan": self.plan.as_dict() if self.plan else None,
            "error": self.error.as_dict() if self.error else None,
        }


def live_status(r: Reconciler, app: str, env: str, rendered: Rendered | None = None) -> LiveStatus:
    stored = r.store.get_status(app, env)
    deployed = stored.revision if stored else None
    last = stored.last_result if stored else None
    try:
        rendered = rendered or r.render(app, env, None)
    except GitswarmError as exc:
        return LiveStatus(
            app,
            env,
            None,
            None,
            deployed,
            "Unknown",
            stored.health if stored else "Unknown",
            last,
            exc.reason,
            exc.message,
            error=exc,
        )
    desired = rendered.desired
    try:
        swarm = r.swarm_for(rendered.env.target)
        observed = swarm.observe(desired.stack)
        baselines = r.store.baselines(app, env)
        plan = make_plan(desired, observed, baselines, prune=False, heal=False)
        ours = [s for s in observed.services if s.compose_name in desired.services]
        tasks = swarm.tasks([s.id for s in ours])
    except GitswarmError as exc:
        return LiveStatus(
            app,
            env,
            desired.stack,
            rendered.revision,
            deployed,
            "Unknown",
            "Unknown",
            last,
            exc.reason,
            exc.message,
            error=exc,
        )
    verdict = assess(ours, tasks, since=r.clock.now() - RECENT)
    health: HealthStatus
    if len(ours) < len(desired.services):
        health = "Missing"
    elif verdict.state == "converged":
        health = "Healthy"
    elif verdict.state == "failed":
        health = "Degraded"
    else:
        health = "Progressing"
    sync: SyncStatus = "Synced" if plan.in_sync and not plan.to_deploy else "OutOfSync"
    services = tuple(
        {
            "service": p.service,
            "state": p.state,
            "running": p.running,
            "desired": p.desired,
            "message": p.message,
            "image": next((s.image for s in ours if s.compose_name == p.service), ""),
        }
        for p in verdict.services
    )
    drift = tuple(c.as_dict() for c in plan.drifted)
    reason = stored.reason if stored else None
    message = stored.message if stored else ""
    if sync == "OutOfSync" and not reason:
        changed = ", ".join(plan.to_deploy) or ", ".join(c["service"] for c in drift)
        message = f"differs from Git: {changed or 'orphaned services'}"
    return LiveStatus(
        app,
        env,
        desired.stack,
        rendered.revision,
        deployed,
        sync,
        health,
        last,
        reason,
        message,
        plan,
        services,
        drift,
        plan.orphans,
    )
