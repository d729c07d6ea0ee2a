"""The dashboard's task list of one stack (reconcile/tasks.py): per service, each task's
slot, node, state, desired state and error, tasks meant to run first; only that stack's."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from gitswarm.model.observed import TaskState
from gitswarm.reconcile.tasks import stack_tasks
from gitswarm.swarm.fake import FakeSwarm

STACK = """
services:
  web:
    image: local/busybox:1
    deploy: {replicas: 2}
  worker:
    image: local/busybox:1
"""


def test_tasks_of_one_stack_by_service_running_first() -> None:
    swarm = FakeSwarm()
    swarm.deploy("shop", STACK, resolve_image="never")
    swarm.deploy("other", STACK, resolve_image="never")
    swarm.scale("shop_web", 1)
    rows = stack_tasks(swarm, "shop")
    assert {r["service"] for r in rows} == {"web", "worker"}
    web = [r for r in rows if r["service"] == "web"]
    assert web[0]["desired"] == "running"
    assert all(set(r) >= {"slot", "node", "state", "error", "created_at"} for r in rows)
    assert stack_tasks(swarm, "nothing-here") == []


def test_the_task_list_does_not_depend_on_the_order_the_engine_lists_tasks_in() -> None:
    """The engine lists tasks in no fixed order (a scale still starting them, a page
    reloaded): the dashboard shows the same rows in the same order for every listing,
    newest first within a slot."""
    swarm = FakeSwarm()
    swarm.deploy("shop", STACK, resolve_image="never")
    swarm.scale("shop_web", 3)
    swarm.deploy("shop", STACK.replace("busybox:1", "busybox:2"), resolve_image="never")
    listed = swarm.tasks
    orders: list[Callable[[list[TaskState]], list[TaskState]]] = [
        lambda ts: ts, lambda ts: ts[::-1], lambda ts: ts[1::2] + ts[::2]
    ]  # fmt: skip
    seen = []
    for order in orders:

        def tasks(ids: Sequence[str], order: Callable[..., list[TaskState]] = order) -> Any:
            return order(listed(ids))

        swarm.tasks = tasks  # type: ignore[method-assign,assignment]
        seen.append(stack_tasks(swarm, "shop"))
    assert seen[0] == seen[1] == seen[2]
    for a, b in itertools.pairwise(seen[0]):
        if (a["service"], a["desired"], a["slot"]) == (b["service"], b["desired"], b["slot"]):
            assert (a["updated_at"] or a["created_at"]) >= (b["updated_at"] or b["created_at"])
