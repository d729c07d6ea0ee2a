"""Has a deploy converged? Every service: desired replicas running (a task with a
healthcheck reports running only once healthy), ``UpdateStatus`` completed; Swarm rolling
back, a paused update, or tasks failing over and over are failures with a stable reason.

A task runs as ``docker service ls`` counts it (docker/cli ``AppendServiceStatus``): it
reports running *and* its node is not down. A node whose engine stopped keeps its tasks'
last reported state ("running") on the managers, and Swarm may leave them so for
minutes (seen mid-rollout on the 3-node test swarm): the callers pass the IDs of the
nodes that are down (``Swarm.down_nodes``) with the tasks.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gitswarm.errors import Reason
from gitswarm.model.observed import ServiceState, TaskState
from gitswarm.model.operation import HealthStatus

State = Literal["converged", "progressing", "failed"]
FAILED_TASK_STATES = frozenset({"failed", "rejected", "orphaned"})
# Clocks of the swarm and of gitswarm differ a little; an update that started just
# before our deploy call returned is still ours.
_SLACK = dt.timedelta(seconds=2)
# An app's health counts the task failures of this long (app_health).
RECENT = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ServiceProgress:
    service: str
    state: State
    running: int
    desired: int | None
    reason: Reason | None = None
    message: str = ""
    lost: int = 0  # tasks meant to run that are on a node that is down

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "state": self.state,
            "running": self.running,
            "desired": self.desired,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    state: State
    services: tuple[ServiceProgress, ...]
    reason: Reason | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "message": self.message,
            "services": [s.as_dict() for s in self.services],
        }


def _latest_per_slot(tasks: Sequence[TaskState]) -> list[TaskState]:
    latest: dict[object, TaskState] = {}
    for task in tasks:
        key = task.slot if task.slot is not None else task.node_id
        cur = latest.get(key)
        stamp = task.created_at or dt.datetime.min.replace(tzinfo=dt.UTC)
        if cur is None or stamp > (cur.created_at or dt.datetime.min.replace(tzinfo=dt.UTC)):
            latest[key] = task
    return list(latest.values())


def _task_errors(tasks: Sequence[TaskState], limit: int = 3) -> str:
    failed = [t for t in tasks if t.state in FAILED_TASK_STATES]
    failed.sort(key=lambda t: t.created_at or dt.datetime.min.replace(tzinfo=dt.UTC))
    msgs = []
    for task in failed[-limit:]:
        detail = task.error or task.message
        if task.exit_code not in (None, 0):
            detail += f" (exit code {task.exit_code})"
        msgs.append(f"task {task.id[:12]}: {task.state}: {detail}".strip())
    return "; ".join(msgs)


def _restart_none(service: ServiceState) -> bool:
    policy = service.spec.get("TaskTemplate", {}).get("RestartPolicy", {}) or {}
    return policy.get("Condition") == "none"


def _runs(task: TaskState, down: frozenset[str]) -> bool:
    """Running, as ``docker service ls`` counts: reported so, on a node that is not down."""
    return task.state == "running" and task.node_id not in down


def _away(tasks: Sequence[TaskState], down: frozenset[str]) -> str:
    """``; no task on node X (down)`` for the down nodes a global service's tasks ran
    on: the service is complete as Swarm counts it, and one node runs none of it."""
    ran = {t.node_id for t in tasks if t.node_id in down and t.state == "running"}
    nodes = sorted((node or "")[:12] for node in ran)
    if not nodes:
        return ""
    return f"; no task on node{'s' if len(nodes) > 1 else ''} {', '.join(nodes)} (down)"


def _one_shots_done(
    service: ServiceState, tasks: Sequence[TaskState], down: frozenset[str]
) -> bool:
    """A one-shot service (restart ``none``) whose every slot ran the current template to
    completion (or is running it). Swarm's updater pauses when a task exits within the
    monitor period — for a one-shot task that is success, not an early termination."""
    if not _restart_none(service):
        return False
    latest = _latest_per_slot(tasks)
    want = service.replicas if service.mode == "replicated" else len(latest)
    template = service.template_digest
    done = [
        t
        for t in latest
        if (_runs(t, down) or t.state == "complete")
        and t.exit_code in (None, 0)
        and (not t.spec_digest or t.spec_digest == template)
    ]
    return want is not None and len(latest) >= want and len(done) == len(latest)


def _rolls_back(service: ServiceState) -> bool:
    update_config = service.spec.get("UpdateConfig", {}) or {}
    return update_config.get("FailureAction") == "rollback"


def assess_service(
    service: ServiceState,
    tasks: Sequence[TaskState],
    *,
    since: dt.datetime,
    failure_threshold: int = 3,
    down: frozenset[str] = frozenset(),
) -> ServiceProgress:
    """``down``: IDs of the nodes that are down (a task there does not run)."""
    name = service.compose_name
    update = service.update_status
    ours = update is not None and (update.started_at is None or update.started_at >= since - _SLACK)
    if ours and update is not None:
        if update.state.startswith("rollback"):
            return ServiceProgress(
                name,
                "failed",
                0,
                service.replicas,
                Reason.SWARM_ROLLED_BACK,
                f"Swarm rolled the update back ({update.state}): {update.message}; "
                + _task_errors(tasks),
            )
        if update.state == "paused" and not _one_shots_done(service, tasks, down):
            hint = ""
            if _restart_none(service):
                hint = (
                    " (a one-shot task that exits within update_config.monitor counts as a "
                    "failure for Swarm's updater: give this service deploy.update_config."
                    "failure_action: continue so every task is replaced)"
                )
            return ServiceProgress(
                name,
                "failed",
                0,
                service.replicas,
                Reason.UPDATE_PAUSED,
                f"Swarm paused the update: {update.message}{hint}; " + _task_errors(tasks),
            )
    recent = [t for t in tasks if t.created_at is None or t.created_at >= since - _SLACK]
    failures = sum(1 for t in recent if t.state in FAILED_TASK_STATES)
    active = [t for t in tasks if t.desired_state in ("running", "ready", "complete")]
    updating = ours and update is not None and update.state == "updating"

    if service.mode in ("replicated-job", "global-job"):
        latest = _latest_per_slot(tasks)
        done = sum(1 for t in tasks if t.state == "complete")
        want = service.replicas if service.mode == "replicated-job" else len(latest)
        if failures >= failure_threshold:
            return ServiceProgress(
                name, "failed", done, want, Reason.TASKS_FAILING, _task_errors(tasks)
            )
        state: State = (
            "converged" if want is not None and want > 0 and done >= want else ("progressing")
        )
        return ServiceProgress(name, state, done, want, None, f"{done}/{want} completed")

    if _restart_none(service):
        # One-shot tasks: the newest task of each slot counts, finished or running.
        latest = _latest_per_slot(tasks)
        ok = sum(1 for t in latest if _runs(t, down) or t.state == "complete")
        bad = [t for t in latest if t.state in FAILED_TASK_STATES]
        want = service.replicas if service.mode == "replicated" else len(latest)
        if bad:
            return ServiceProgress(
                name, "failed", ok, want, Reason.TASKS_FAILING, _task_errors(bad)
            )
        state = "converged" if want is not None and ok >= want and not updating else "progressing"
        return ServiceProgress(name, state, ok, want, None, f"{ok}/{want} running or done")

    # Right after an update the spec is new but the tasks may still be the old ones, and
    # UpdateStatus may not say "updating" yet: only tasks created from the current task
    # template count.
    template = service.template_digest
    wanted = [t for t in active if t.desired_state == "running"]
    stale = [t for t in wanted if t.spec_digest and t.spec_digest != template]
    pending = [t for t in wanted if not _runs(t, down)]
    running = sum(1 for t in wanted if _runs(t, down) and t not in stale)
    lost = sum(1 for t in wanted if t.node_id in down)
    if service.mode == "replicated":
        want = service.replicas or 0
        converged = running >= want and not pending and not stale and not updating
        if want == 0:
            converged = not wanted and not updating
    else:  # global: one task per eligible node, and a node that is down is not one
        # Swarm's global orchestrator shuts down the tasks of a node that goes down and
        # counts the service complete without it (``docker service ls``: desired 2 of 3
        # nodes; an update completes on the others); a new task starts there when the
        # node is back (seen on the 3-node test swarm). A task read as still meant to
        # run there, in the moment before Swarm shuts it down, is not lost either.
        wanted = [t for t in wanted if t.node_id not in down]
        stale = [t for t in stale if t.node_id not in down]
        pending = [t for t in pending if t.node_id not in down]
        lost = 0
        want = len(wanted)
        converged = want > 0 and running == want and not stale and not updating

    if converged:
        detail = f"{running}/{want} running"
        if service.mode == "global":
            detail += _away(tasks, down)
        return ServiceProgress(name, "converged", running, want, None, detail)
    if failures >= failure_threshold and not (updating and _rolls_back(service)):
        return ServiceProgress(
            name, "failed", running, want, Reason.TASKS_FAILING, _task_errors(tasks)
        )
    detail = f"{running}/{want} running"
    if service.mode == "global":
        detail += _away(tasks, down)
    if lost:
        detail += f", {lost} task(s) on a node that is down"
    if updating:
        detail += ", update in progress"
    if failures:
        detail += f", {failures} failed task(s): {_task_errors(tasks, 1)}"
    return ServiceProgress(name, "progressing", running, want, None, detail, lost)


def assess(
    services: Sequence[ServiceState],
    tasks: Sequence[TaskState],
    *,
    since: dt.datetime,
    failure_threshold: int = 3,
    down_nodes: frozenset[str] = frozenset(),
) -> Verdict:
    """The verdict over ``services``: failed if any failed, converged if all converged.
    ``down_nodes``: IDs of the nodes that are down (``Swarm.down_nodes``)."""
    by_service: dict[str, list[TaskState]] = defaultdict(list)
    for task in tasks:
        by_service[task.service_id].append(task)
    progress = tuple(
        assess_service(
            s,
            by_service.get(s.id, []),
            since=since,
            failure_threshold=failure_threshold,
            down=down_nodes,
        )
        for s in sorted(services, key=lambda s: s.name)
    )
    failed = [p for p in progress if p.state == "failed"]
    if failed:
        first = failed[0]
        message = "; ".join(f"{p.service}: {p.message}" for p in failed)
        return Verdict("failed", progress, first.reason, message)
    if all(p.state == "converged" for p in progress):
        return Verdict("converged", progress)
    waiting = "; ".join(f"{p.service}: {p.message}" for p in progress if p.state != "converged")
    return Verdict("progressing", progress, None, waiting)


def app_health(
    ours: Sequence[ServiceState],
    desired: int,
    tasks: Sequence[TaskState],
    *,
    now: dt.datetime,
    down_nodes: frozenset[str] = frozenset(),
) -> tuple[HealthStatus, Verdict]:
    """An app's health now, from its services on the swarm (``desired``: how many its
    render has) and their tasks: Missing, Healthy, Degraded or Progressing. ``status
    --live`` (reconcile/status.py) and the agent's drift round (reconcile/agent/health.py)
    both say it this way, so they agree.

    A task lost with its node (meant to run, on a node that is down) makes the app
    Degraded, not Progressing: no sync waits for it any more, and Swarm may leave it so
    (mid-rollout it did for minutes on the 3-node test swarm) — when Swarm replaces it,
    the next look says Healthy. A sync's own wait (reconcile/apply.py) keeps waiting for
    such a task until its health timeout, as for any other."""
    verdict = assess(ours, tasks, since=now - RECENT, down_nodes=down_nodes)
    health: HealthStatus
    if len(ours) < desired:
        health = "Missing"
    elif verdict.state == "converged":
        health = "Healthy"
    elif verdict.state == "failed" or any(p.lost for p in verdict.services):
        health = "Degraded"
    else:
        health = "Progressing"
    return health, verdict
