"""Apply a plan to a swarm, wait for convergence, collect old config/secret versions.

Steps of the sync pipeline (reconcile/sync.py calls them in order):

1. ``apply_plan``: new config/secret versions first, then ``docker stack deploy`` of only
   the services that change, then removal of pruned services (owned ones only);
2. ``follow_rollout``: ``read_applied``: right after the deploy returns, what gitswarm
   applied to each service (plan/applied.py), the drift reference — never the state
   after the wait; then ``wait_converged``: poll services, tasks and the nodes that are
   down until health/ says converged or failed, or the timeout passes (the first read
   serves as its first poll);
3. ``collect_garbage``: remove old owned config/secret versions no service and no live
   task uses, keeping the newest ``keep`` per name for rollbacks -- except a provider's
   secrets (source/providers.py): a rollback asks the provider again and gets today's
   value, so an old version could never be used again, and keeping it would only keep a
   stale (perhaps revoked) secret value on the swarm.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gitswarm.errors import HealthError, Reason
from gitswarm.health import Verdict, assess
from gitswarm.model.config import ResolveImage
from gitswarm.model.observed import ObjectState, ServiceState, StackState
from gitswarm.model.stack import (
    LABEL_APP,
    LABEL_ENV,
    LABEL_OBJECT_KEY,
    LABEL_PROVIDER,
    DesiredStack,
)
from gitswarm.plan import Plan, applied_spec
from gitswarm.swarm.port import Swarm

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Clock:
    """Time, injectable: tests and the agent's benchmarks control it."""

    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def checkpoint(self) -> None:
        """Raise ``Stopping`` here if the agent is stopping (a clock of ``stopping_clock``)."""
        self.sleep(0.0)


class Stopping(Exception):
    """The agent is stopping (SIGTERM): the running operation's waits end here.

    Not a GitswarmError: it is no failure and no outcome is recorded for it. The
    operation stays Running, its locks are released, and the next agent marks it
    Interrupted -- exactly as after a kill -9 (store/operations.py, mark_interrupted)."""


def stopping_clock(stop: threading.Event, base: Clock | None = None) -> Clock:
    """``base`` whose ``sleep`` raises ``Stopping`` once ``stop`` is set: an operation
    waiting for convergence (up to health_timeout, 300 s by default) ends within one
    poll of a SIGTERM instead of keeping the process alive until Swarm's SIGKILL. A
    real sleep waits on ``stop`` itself; an injected one (tests) is kept as it is."""
    base = base or Clock()
    real = base.sleep is time.sleep

    def sleep(seconds: float) -> None:
        if stop.is_set():
            raise Stopping("the agent is stopping")
        if real:
            stop.wait(seconds)
        else:
            base.sleep(seconds)
        if stop.is_set():
            raise Stopping("the agent is stopping")

    return replace(base, sleep=sleep)


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
        if plan.reimage and resolve_image == "changed":
            # An image changed by hand: `changed` would keep it (the stack's image label
            # still says Git's), so a heal would leave the image as someone set it.
            resolve_image = "always"
        swarm.deploy(plan.stack, compose_yaml, resolve_image=resolve_image)
    for change in plan.to_remove:
        if change.service_id:
            progress(f"removing service {plan.stack}_{change.service}")
            swarm.remove_service(change.service_id)


# The health poll's pauses: short at first (a spec-only update, or one that converges at
# once, is seen within ~50 ms, not a full pause later), then every 250 ms.
POLL_PAUSES = (0.05, 0.1, 0.2)


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
    first: Sequence[ServiceState] | None = None,
) -> Verdict:
    """Poll until every service in ``services`` (compose names) has converged.
    ``first``: the stack's services as just read (after the deploy: read_applied's
    read), the first poll's.

    Raises ``HealthError`` (reason HealthTimeout, SwarmRolledBack, UpdatePaused or
    TasksFailing) with the task errors in the message."""
    names = set(services)
    deadline = clock.monotonic() + timeout
    last_message = ""
    verdict: Verdict | None = None
    polls = 0
    while True:
        listed = tuple(first) if first is not None else tuple(swarm.services(stack))
        first = None
        observed = [s for s in listed if s.compose_name in names]
        missing = names - {s.compose_name for s in observed}
        tasks = swarm.tasks([s.id for s in observed])
        # A task on a node that is down still says running (health/converge.py).
        down = swarm.down_nodes() if tasks else frozenset()
        verdict = assess(observed, tasks, since=since, down_nodes=down)
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
        clock.sleep(min(interval, POLL_PAUSES[polls]) if polls < len(POLL_PAUSES) else interval)
        polls += 1


def read_applied(
    swarm: Swarm, desired: DesiredStack, services: Iterable[str]
) -> dict[str, Mapping[str, Any]]:
    """The spec gitswarm applied to each of ``services`` (compose names), read right after
    ``docker stack deploy`` returned and checked against the render (plan/applied.py): the
    baselines later observations are compared with to see drift. A manual change made
    while the rollout converges is therefore drift, never part of the baseline."""
    return applied_of(swarm.services(desired.stack), desired, services)


def applied_of(
    live: Iterable[ServiceState], desired: DesiredStack, services: Iterable[str]
) -> dict[str, Mapping[str, Any]]:
    """``read_applied`` from the stack's services as just read (``live``)."""
    wanted = set(services)
    return {
        s.compose_name: applied_spec(s, desired.services.get(s.compose_name, {}))
        for s in live
        if s.compose_name in wanted
    }


@dataclass(frozen=True)
class Rollout:
    """What a deploy applied (``read_applied``), the health verdict (None: not waited
    for), and the stack's services read last, after the wait (None: nothing deployed)."""

    applied: dict[str, Mapping[str, Any]]
    verdict: Verdict | None
    services: tuple[ServiceState, ...] | None


def follow_rollout(
    swarm: Swarm,
    desired: DesiredStack,
    services: Sequence[str],
    *,
    wait: bool,
    since: dt.datetime,
    timeout: float,
    clock: Clock,
    progress: Progress = _quiet,
) -> Rollout:
    """Right after ``docker stack deploy`` of ``services``: what was applied, read at
    once (the drift reference), then with ``wait`` the health wait, whose first poll that
    read is, and one read after it: the baselines compare it with what was applied (a
    change made during the wait is drift) and the garbage collection starts from it.
    One read less per step than each reading the stack itself (bench/ issue 18)."""
    if not services:
        return Rollout({}, None, None)
    live = tuple(swarm.services(desired.stack))
    applied = applied_of(live, desired, services)
    if not wait:
        return Rollout(applied, None, live)
    progress("wait for health")
    verdict = wait_converged(
        swarm, desired.stack, services, since=since, timeout=timeout, clock=clock,
        progress=progress, first=live,
    )  # fmt: skip
    return Rollout(applied, verdict, tuple(swarm.services(desired.stack)))


# Task states after which a task's container no longer runs (swarmkit's terminal states).
_DONE = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})


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
    clock: Clock | None = None,
    settle: float = 30.0,
    observed: StackState | None = None,
    services: Sequence[ServiceState] | None = None,
) -> list[str]:
    """Remove owned config/secret versions of this app and environment that no service
    and no live task uses, keeping the ``keep`` newest unused versions of each name for
    rollbacks (none for a provider's secrets). Returns the names removed. An object still
    in use is skipped, never forced; one that only stopping tasks still mount (an update
    that just replaced them) is removed once they are gone, waiting up to ``settle``
    seconds -- else it would stay until the next deploy of this stack. ``observed``: the
    stack as just read, when nothing was written since (no first re-read); ``services``:
    its services alone as just read (the first round reads only its configs and secrets)."""
    clock = clock or Clock()
    deadline = clock.monotonic() + settle
    removed: list[str] = []
    while True:
        if observed is not None:
            state = observed
        elif services is not None:
            state = StackState(desired.stack, tuple(services), tuple(swarm.objects(desired.stack)))
        else:
            state = swarm.observe(desired.stack)
        observed, services = None, None
        used_by_services = _referenced(state.services)
        tasks = swarm.tasks([s.id for s in state.services])
        held: set[str] = set()  # by tasks that still run (old ones stopping, too)
        stopping: set[str] = set()
        for task in tasks:
            if task.state not in _DONE or task.desired_state == "running":
                held.update(task.object_ids)
                if task.desired_state != "running":
                    stopping.update(task.object_ids)
        in_use = used_by_services | held
        waiting = False
        for obj in _spare(state.objects, desired, used_by_services, keep):
            if obj.id in in_use:
                waiting = waiting or (obj.id in stopping and obj.id not in used_by_services)
                continue
            if swarm.remove_object(obj.kind, obj.id):
                progress(f"removed old {obj.kind} {obj.name}")
                removed.append(obj.name)
        if not waiting or clock.monotonic() >= deadline:
            return removed
        progress("waiting for stopping tasks to let go of old config/secret versions")
        clock.sleep(0.5)


def _spare(
    objects: Iterable[ObjectState], desired: DesiredStack, used: set[str], keep: int
) -> list[ObjectState]:
    """The owned versions of this app and environment beyond what may be kept: not the
    current ones, not used by a service, past the ``keep`` newest of each name."""
    current = {obj.name for obj in desired.objects}
    groups: dict[tuple[str, str], list[ObjectState]] = defaultdict(list)
    for obj in objects:
        if not obj.owned:
            continue
        if obj.labels.get(LABEL_APP) != desired.app or obj.labels.get(LABEL_ENV) != desired.env:
            continue
        groups[(obj.kind, obj.labels.get(LABEL_OBJECT_KEY, obj.name))].append(obj)
    out: list[ObjectState] = []
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    for versions in groups.values():
        spare = sorted(
            (o for o in versions if o.id not in used and o.name not in current),
            key=lambda o: o.created_at or epoch,
            reverse=True,
        )
        # a provider is asked again on rollback: its old values are of no use
        spare_keep = 0 if any(o.labels.get(LABEL_PROVIDER) for o in versions) else keep
        out += spare[spare_keep:]
    return out
