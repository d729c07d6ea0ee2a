"""The drift round's health check: is every deployed app still as healthy as recorded?

A sync records an app's health (its health gate); afterwards a task that dies or
crash-loops changes nothing Swarm reports on the manager's event stream, so the record
would say Healthy until the next sync. The round (drift.py ``check_all``) therefore
reads every task of each target once, and which of its nodes are down (two GETs per
target, not per app: a task on a node that is down still says running, and does not
run: health/converge.py), and per app x env with a deployed render (state.py's render
cache):

    nothing changed       the target's services, tasks and down nodes are those of the
                          last round:
                          no per-app work at all; an app's own ones are: one dict lookup
    changed               assessed as ``status --live`` and the sync's gate do
                          (health.app_health); the status row is written only when the
                          health differs from the recorded one (Recorder.health_changed)
    a sync runs or waits  left alone: the sync owns its health (state.busy); assessed
                          again the next round

It never writes to Docker, and writes the store only when a health changed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence

from gitswarm.errors import GitswarmError
from gitswarm.health import app_health
from gitswarm.model.config import Target
from gitswarm.model.observed import LazySpec, ServiceState, TaskState
from gitswarm.model.operation import AppStatus
from gitswarm.reconcile.agent.context import AgentContext
from gitswarm.reconcile.sync import Rendered

log = logging.getLogger("gitswarm.agent")

AppEnv = tuple[str, str]


def _service_key(service: ServiceState) -> Hashable:
    update = service.update_status
    return (service.id, service.version, update.state if update else None)


def _task_key(task: TaskState) -> Hashable:
    return (task.id, task.state, task.desired_state)


class HealthRound:
    """Kept by the drift task (one per agent; the round runs on one worker at a time)."""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self._target_keys: dict[Target, Hashable] = {}  # the last quiet round's, per target
        self._app_keys: dict[AppEnv, Hashable] = {}  # what each app was assessed on

    def check(
        self,
        listings: Mapping[Target, Mapping[str, Sequence[ServiceState]]],
        statuses: Mapping[tuple[str, str], AppStatus] | None = None,
    ) -> None:
        """``statuses``: the round's one read of every status (drift.py), so that a
        first round at 1,000 apps makes no store read per app; None: each is read."""
        renders = self.ctx.state.renders()
        for target, listing in listings.items():
            self._check_target(target, listing, renders, statuses)

    def _check_target(
        self,
        target: Target,
        listing: Mapping[str, Sequence[ServiceState]],
        renders: Sequence[tuple[str, str, Rendered]],
        statuses: Mapping[tuple[str, str], AppStatus] | None,
    ) -> None:
        ctx = self.ctx
        try:
            swarm = ctx.swarm_for(target)
            tasks = swarm.all_tasks()
            down = swarm.down_nodes() if tasks else frozenset()
        except GitswarmError as exc:
            log.warning("health round: %s", exc.message, extra={"target": target.name})
            return
        # Services, tasks and down nodes as of a round that left nothing to do, and how
        # many deployed renders there were (the render of an app the agent learns of is
        # one more). A node going down changes no task: its own part of the key.
        target_key = (
            tuple(_service_key(s) for stack in listing.values() for s in stack),
            tuple(map(_task_key, tasks)),
            tuple(sorted(down)),
            len(renders),
        )
        if self._target_keys.get(target) == target_key:
            return  # nothing on this target changed: no per-app work at all
        apps = [
            (app, env, r.desired.stack, frozenset(r.desired.services))
            for app, env, r in renders
            if r.env.target == target and ctx.settings.watches(env)
        ]
        by_service: dict[str, list[TaskState]] = defaultdict(list)
        for task in tasks:
            by_service[task.service_id].append(task)
        settled = True
        now = ctx.reconciler.clock.now()
        for app, env, stack, services in apps:
            ours = [s for s in listing.get(stack, ()) if s.compose_name in services]
            theirs = [t for s in ours for t in by_service.get(s.id, ())]
            key = (
                tuple(map(_service_key, ours)),
                tuple(map(_task_key, theirs)),
                tuple(sorted({t.node_id for t in theirs if t.node_id in down})),
            )
            if self._app_keys.get((app, env)) == key:
                continue
            if ctx.state.busy(app, env):
                settled = False  # a sync of it owns its health: the next round looks again
                continue
            status = (
                ctx.store.get_status(app, env) if statuses is None else statuses.get((app, env))
            )
            if status is None or status.revision is None:
                continue
            health, verdict = app_health(ours, len(services), theirs, now=now, down_nodes=down)
            for service in ours:  # its specs were decoded to assess it: not kept (LazySpec)
                if isinstance(service.spec, LazySpec):
                    service.spec.release()
            if health != status.health and statuses is not None:
                status = ctx.store.get_status(app, env)  # the round's read may be older
                if status is None or status.revision is None:
                    continue
            if health != status.health:
                if ctx.state.busy(app, env):  # a sync started meanwhile: its record counts
                    settled = False
                    continue
                ctx.reconciler.recorder.health_changed(
                    app, env, status.health, health, verdict.message
                )
            self._app_keys[(app, env)] = key
        if settled:
            self._target_keys[target] = target_key
        else:
            self._target_keys.pop(target, None)


__all__ = ["HealthRound"]
