"""Apply a plan to a swarm, wait for convergence, collect old config/secret versions.

Steps of the sync pipeline (reconcile/sync.py calls them in order):

1. ``apply_plan``: new config/secret versions first, then ``docker stack deploy`` of only
   the services that change, then removal of pruned services (owned ones only);
2. ``wait_converged``: poll services and tasks until health/ says converged or failed,
   or the timeout passes;
3. ``read_applied``: right after the deploy returns, what gitswarm applied to each
   service (plan/applied.py), the drift reference — never the state after the wait;
4. ``collect_garbage``: remove old owned config/secret versions no service uses,
   keeping the newest ``keep`` per name for rollbacks.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitswarm.errors import HealthError, Reason
from gitswarm.health import Verdict, assess
from gitswarm.model.config import ResolveImage
from gitswarm.model.observed import ObjectState, ServiceState
from gitswarm.model.stack import (
    LABEL_APP,
    LABEL_ENV,
    LABEL_OBJECT_KEY,
    DesiredStack,
)
from gitswarm.plan import Plan, applied_spec
from gitswarm.swarm.client import Swarm

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Clock:
    """Time, injectable: tests and the agent's benchmarks control it."""

    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def apply_plan(
    swarm: Swarm,
    plan: Plan,
    compose_yaml: str | None,
    *,
    resolve_image: ResolveImage,
    progress: Progress = _quiet,
) -> None:
    """Write the plan to the swarm. ``compose_yaml`` is the rendered stack holding only
    the services to deploy (None when nothing is deployed)."""
    for material in plan.create_objects:
        progress(f"creating {material.kind} {material.name}")
        swarm.create_object(material)
    if plan.to_deploy:
        if compose_yaml is None:
            raise ValueError("services to deploy but no compose file")
        progress("docker stack deploy " + plan.stack + ": " + ", ".join(plan.to_deploy))
        swarm.deploy(plan.stack, compose_yaml, resolve_image=resolve_image)
    for change in plan.to_remove:
        if change.service_id:
            progress(f"removing service {plan.stack}_{change.service}")
            swarm.remove_service(change.service_id)


def wait_converged(
    swarm: Swarm,
    stack: str,
    services: Iterable[str],
    *,
    since: dt.datetime,
    timeout: float,
    clock: Clock = Clock(),
    interval: float = 0.25,
    progress: Progress = _quiet,
) -> Verdict:
    """Poll until every service in ``services`` (compose names) has converged.

    Raises ``HealthError`` (reason HealthTimeout, SwarmRolledBack, UpdatePaused or
    TasksFailing) with the task errors in the message."""
    names = set(services)
    deadline = clock.monotonic() + timeout
    last_message = ""
    verdict: Verdict | None = None
    while True:
        observed = [s for s in swarm.services(stack) if s.compose_name in names]
        missing = names - {s.compose_name for s in observed}
        tasks = swarm.tasks([s.id for s in observed])
        verdict = assess(observed, tasks, since=since)
        if missing:
            verdict = Verdict("progressing", verdict.services, None, f"missing: {sorted(missing)}")
        if verdict.state == "failed":
            raise HealthError(verdict.message, reason=verdict.reason or Reason.TASKS_FAILING)
        if verdict.state == "converged":
            return verdict
        if verdict.message != last_message:
            progress(verdict.message)
            last_message = verdict.message
        if clock.monotonic() >= deadline:
            raise HealthError(
                f"services of stack {stack} did not converge within {timeout:.0f}s: "
                f"{verdict.message}",
                reason=Reason.HEALTH_TIMEOUT,
            )
        clock.sleep(interval)


def read_applied(
    swarm: Swarm, desired: DesiredStack, services: Iterable[str]
) -> dict[str, Mapping[str, Any]]:
    """The spec gitswarm applied to each of ``services`` (compose names), read right after
    ``docker stack deploy`` returned and checked against the render (plan/applied.py): the
    baselines later observations are compared with to see drift. A manual change made
    while the rollout converges is therefore drift, never part of the baseline."""
    wanted = set(services)
    return {
        live.compose_name: applied_spec(live, desired.services.get(live.compose_name, {}))
        for live in swarm.services(desired.stack)
        if live.compose_name in wanted
    }


def _referenced(services: Iterable[ServiceState]) -> set[str]:
    """IDs of configs and secrets that services use."""
    used: set[str] = set()
    for service in services:
        spec = service.spec.get("TaskTemplate", {}).get("ContainerSpec", {})
        for ref in (spec.get("Configs") or []) + (spec.get("Secrets") or []):
            for key in ("ConfigID", "SecretID"):
                if ref.get(key):
                    used.add(ref[key])
    return used


def collect_garbage(
    swarm: Swarm,
    desired: DesiredStack,
    *,
    keep: int,
    progress: Progress = _quiet,
) -> list[str]:
    """Remove owned config/secret versions of this app and environment that no service
    uses, keeping the ``keep`` newest unused versions of each name for rollbacks.
    Returns the names removed. An object still in use is skipped, never forced."""
    state = swarm.observe(desired.stack)
    in_use = _referenced(state.services)
    current = {obj.name for obj in desired.objects}
    groups: dict[tuple[str, str], list[ObjectState]] = defaultdict(list)
    for obj in state.objects:
        if not obj.owned:
            continue
        if obj.labels.get(LABEL_APP) != desired.app or obj.labels.get(LABEL_ENV) != desired.env:
            continue
        groups[(obj.kind, obj.labels.get(LABEL_OBJECT_KEY, obj.name))].append(obj)
    removed: list[str] = []
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    for versions in groups.values():
        spare = sorted(
            (o for o in versions if o.id not in in_use and o.name not in current),
            key=lambda o: o.created_at or epoch,
            reverse=True,
        )
        for obj in spare[keep:]:
            if swarm.remove_object(obj.kind, obj.id):
                progress(f"removed old {obj.kind} {obj.name}")
                removed.append(obj.name)
    return removed
