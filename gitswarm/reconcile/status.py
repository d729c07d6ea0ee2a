"""The live status of an application in an environment, as Argo CD shows it.

Sync: Git's head rendered and planned against the swarm (Synced when nothing would
change and nothing drifted). Health: the services' convergence right now (Healthy,
Progressing, Degraded, Missing). Plus what the store remembers: the last deployed
revision and the last operation. Called by ``gitswarm status`` / ``diff`` and the API.
"""

from __future__ import annotations

from typing import TypeVar

from gitswarm.errors import GitswarmError
from gitswarm.health import app_health
from gitswarm.model.operation import SyncStatus
from gitswarm.model.reads import StatusReads
from gitswarm.plan import make_plan
from gitswarm.reconcile.recorded import StatusRow
from gitswarm.reconcile.sync import Reconciler, Rendered

Reads = TypeVar("Reads", bound=StatusReads)  # a Store, or the CLI's quick reads


LiveStatus = StatusRow  # one shape for a status row, recorded or live (recorded.py)


def live_status(
    r: Reconciler[Reads], app: str, env: str, rendered: Rendered | None = None
) -> LiveStatus:
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
        down = swarm.down_nodes() if tasks else frozenset()  # their tasks do not run
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
    health, verdict = app_health(
        ours, len(desired.services), tasks, now=r.clock.now(), down_nodes=down
    )
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
