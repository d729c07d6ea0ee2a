"""Record what a sync applied as each deployed service's baseline (reconcile/sync.py
calls it after the deploy and the wait): the reference that drift is judged against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gitswarm.model.observed import ServiceState, StackState
from gitswarm.model.operation import AppStatus, Baseline
from gitswarm.model.stack import DesiredStack
from gitswarm.plan import Plan, ServiceChange, make_plan
from gitswarm.swarm.port import Swarm

if TYPE_CHECKING:  # SQLAlchemy: status imports this module and reads without it
    from gitswarm.store import Store


def unsettled(store: Store, status: AppStatus | None) -> dict[str, str]:
    """The services the last deploy changed when it failed after reaching the swarm
    (health, timeout, kill -9), each with that deploy's revision: the baselines are
    still the last good deploy's, so those services may run the failed revision's spec
    and its hash label — gitswarm's own write, not drift (plan.rewritten_drift). Empty
    when the last operation succeeded or deployed the revision the status says.
    ``status``: the app's, as the caller has just read it."""
    if (
        status is None
        or status.last_result not in ("Failed", "Interrupted")
        or status.operation_id is None
    ):
        return {}
    operation = store.get_operation(status.operation_id)
    revision = operation.revision
    if not revision or revision == status.revision:
        return {}
    return {c.service: revision for c in operation.changes if c.action in ("changed", "created")}


def plan_recorded(
    store: Store, desired: DesiredStack, observed: StackState, *, prune: bool, heal: bool
) -> Plan:
    """``desired`` planned against ``observed``, the recorded baselines and what a failed
    deploy left (``unsettled``): the plan of a sync (reconcile/sync.py)."""
    app, env = desired.app, desired.env
    baselines = store.baselines(app, env)
    left = unsettled(store, store.get_status(app, env))
    return make_plan(desired, observed, baselines, prune=prune, heal=heal, unsettled=left)


def save_baselines(
    store: Store,
    swarm: Swarm,
    desired: DesiredStack,
    plan: Plan,
    applied: Mapping[str, Mapping[str, Any]],
    *,
    live: Sequence[ServiceState] | None = None,
) -> tuple[ServiceChange, ...]:
    """Record what was applied as each deployed service's baseline, and return the
    drift of those services now (a manual change made while they converged). ``live``:
    the stack's services as just read (after the health wait); None: read here."""
    listed = swarm.services(desired.stack) if live is None else live
    live = [s for s in listed if s.compose_name in applied]
    saved: dict[str, Baseline] = {}
    for service in live:
        name = service.compose_name
        spec = applied[name]
        saved[name] = store.save_baseline(
            desired.app,
            desired.env,
            name,
            spec=spec,
            rendered=desired.services.get(name, {}),
            # The version says "nothing wrote since": true only if the spec is still
            # the applied one (0 never matches, so the spec is compared).
            version=service.version if service.spec == spec else 0,
            spec_hash=desired.service_hashes.get(name, service.spec_hash or ""),
            revision=desired.revision,
        )
    for change in plan.to_remove:
        store.delete_baseline(desired.app, desired.env, change.service)
    now = make_plan(desired, StackState(desired.stack, tuple(live)), saved, prune=False, heal=False)
    return tuple(c for c in now.drifted if c.service in saved)


__all__ = ["plan_recorded", "save_baselines", "unsettled"]
