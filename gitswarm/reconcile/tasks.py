"""The tasks of one stack as the dashboard lists them: per service, each task's slot,
node, state, desired state, error and times. Called by the agent's ``tasks`` (the
AgentPort method behind the dashboard's application page); reads the swarm only.
"""

from __future__ import annotations

from typing import Any

from gitswarm.swarm.client import Swarm

MAX_TASKS = 500  # a page lists at most this many (Swarm keeps 5 old tasks per slot)


def stack_tasks(swarm: Swarm, stack: str) -> list[dict[str, Any]]:
    services = {s.id: s for s in swarm.services(stack)}
    if not services:
        return []
    rows = []
    for task in swarm.tasks(list(services)):
        service = services.get(task.service_id)
        if service is None:
            continue
        rows.append(
            {
                "service": service.compose_name,
                "id": task.id[:12],
                "slot": task.slot,
                "node": (task.node_id or "")[:12],
                "state": task.state,
                "desired": task.desired_state,
                "error": task.error,
                "message": task.message,
                "image": task.image,
                "current": task.spec_digest == service.template_digest,
                "created_at": task.created_at.isoformat() if task.created_at else None,
                "updated_at": task.updated_at.isoformat() if task.updated_at else None,
            }
        )
    # Per service: tasks meant to run first, then by slot, newest first (then by id: the
    # engine lists tasks in no fixed order, and the page must not reorder on a reload).
    # Stable sorts, last key first.
    rows.sort(key=lambda r: str(r["id"]))
    rows.sort(key=lambda r: str(r["updated_at"] or r["created_at"] or ""), reverse=True)
    rows.sort(key=lambda r: (r["service"], r["desired"] != "running", r["slot"] or 0))
    return rows[:MAX_TASKS]
