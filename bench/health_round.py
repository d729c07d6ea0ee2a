"""The drift round's health check (reconcile/agent/health.py) at 1,000 apps, in process.

``python -m bench.health_round [APPS]``: APPS deployed apps of 2 services with one
running task each, on the fake swarm (the one GET of every task is the engine's cost,
measured on a real swarm by bench/noop.py's rounds). Prints the Python time of the
check per round: the first (every app assessed), quiet ones (nothing changed: no
per-app work), and one after a single task died (every app's own key compared, one
assessed and written).
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from types import SimpleNamespace
from typing import Any, cast

from gitswarm.model.config import Target
from gitswarm.model.observed import ServiceState, TaskState
from gitswarm.model.stack import LABEL_STACK
from gitswarm.reconcile.agent.context import AgentContext
from gitswarm.reconcile.agent.health import HealthRound
from gitswarm.swarm.fake import FakeSwarm


def _rig(apps: int) -> tuple[HealthRound, FakeSwarm, list[str], Target]:
    target = Target("local")
    swarm = FakeSwarm()
    now = dt.datetime.now(dt.UTC)
    renders = []
    health: dict[tuple[str, str], str] = {}
    writes: list[str] = []
    for i in range(apps):
        stack = f"s{i}"
        for name in ("web", "api"):
            sid = f"{stack}_{name}"
            spec: dict[str, Any] = {"TaskTemplate": {"ContainerSpec": {"Image": "x"}}}
            swarm._services[sid] = ServiceState(
                sid, sid, {LABEL_STACK: stack}, spec, version=1, replicas=1
            )
            swarm._tasks[sid] = [
                TaskState(f"t-{sid}", sid, "n1", 1, "running", "running", created_at=now)
            ]
        desired = SimpleNamespace(stack=stack, services={"web": 1, "api": 1})
        renders.append(
            (f"a{i}", "dev", SimpleNamespace(desired=desired, env=SimpleNamespace(target=target)))
        )
        health[(f"a{i}", "dev")] = "Healthy"

    def set_health(app: str, env: str, _was: str, new: str, _detail: str) -> None:
        health[(app, env)] = new
        writes.append(app)

    ctx = SimpleNamespace(
        state=SimpleNamespace(renders=lambda: renders, busy=lambda _a, _e: False),
        settings=SimpleNamespace(watches=lambda _env: True),
        swarm_for=lambda _t: swarm,
        reconciler=SimpleNamespace(
            clock=SimpleNamespace(now=lambda: now),
            recorder=SimpleNamespace(health_changed=set_health),
        ),
        store=SimpleNamespace(
            get_status=lambda a, e: SimpleNamespace(revision="r", health=health[(a, e)])
        ),
    )
    return HealthRound(cast(AgentContext, ctx)), swarm, writes, target


def _timed(check: HealthRound, swarm: FakeSwarm, target: Target) -> float:
    listings = {target: swarm.services_by_stack()}  # the round's listing, read anyway
    started = time.perf_counter()
    check.check(listings)
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    apps = int(argv[0]) if argv else 1000
    check, swarm, writes, target = _rig(apps)
    first = _timed(check, swarm, target)
    first_writes = len(writes)
    quiet = [_timed(check, swarm, target) for _ in range(20)]
    sid = "s0_web"
    dead = swarm._tasks[sid][0]
    swarm._tasks[sid] = [TaskState("t-dead", sid, "n1", 1, "running", "starting")]
    swarm._tasks[sid].append(TaskState(dead.id, sid, "n1", 1, "shutdown", "failed"))
    changed = _timed(check, swarm, target)
    print(f"{apps} apps, {2 * apps} services, {2 * apps} tasks")
    print(f"first round (all assessed): {first * 1000:.1f} ms, writes {first_writes}")
    print(f"quiet round: median {statistics.median(quiet) * 1000:.1f} ms")
    print(f"one task died: {changed * 1000:.1f} ms, writes {writes}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
