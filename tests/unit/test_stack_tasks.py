"""The dashboard's task list of one stack (reconcile/tasks.py): per service, each task's
slot, node, state, desired state and error, tasks meant to run first; only that stack's."""

from __future__ import annotations

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
