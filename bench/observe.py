"""Watching the swarm from outside: when has a service converged?

One observer for every contender (bare ``docker stack deploy``, gitswarm, the naive
agent), so "converged" means the same thing for all: the service's spec has the wanted
image and replica count, and gitswarm's own health verdict (``gitswarm.health.assess``:
desired replicas running from the current task template, healthchecks passed — a task
with a healthcheck is ``running`` only once healthy — and no update in progress) says
converged. It polls the Docker API as gitswarm does, but every 50 ms instead of 250 ms,
so the floor is measured finely.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from gitswarm.errors import SwarmError
from gitswarm.health import assess
from gitswarm.swarm.client import DockerSwarm

INTERVAL = 0.05


class Timeout(RuntimeError):
    pass


@dataclass
class Observer:
    swarm: DockerSwarm

    def converged(
        self,
        stack: str,
        service: str,
        *,
        image: str | None = None,
        replicas: int | None = None,
        since: dt.datetime,
        timeout: float = 120.0,
    ) -> float:
        """``time.monotonic()`` of the first poll that saw ``stack_service`` converged."""
        deadline = time.monotonic() + timeout
        last = "nothing observed"
        while True:
            try:
                found = [s for s in self.swarm.services(stack) if s.compose_name == service]
                if found:
                    live = found[0]
                    image_ok = image is None or live.image.split("@")[0] == image
                    replicas_ok = replicas is None or live.replicas == replicas
                    if image_ok and replicas_ok:
                        tasks = self.swarm.tasks([live.id])
                        verdict = assess([live], tasks, since=since)
                        if verdict.state == "converged":
                            return time.monotonic()
                        last = verdict.message
                    else:
                        last = f"spec: image {live.image}, replicas {live.replicas}"
            except SwarmError as exc:
                last = exc.message
            if time.monotonic() > deadline:
                raise Timeout(f"{stack}_{service} did not converge in {timeout:.0f}s: {last}")
            time.sleep(INTERVAL)

    def replicas(self, stack: str, service: str) -> int | None:
        for live in self.swarm.services(stack):
            if live.compose_name == service:
                return live.replicas
        return None

    def changed_at(self, name: str, after: float) -> float:
        """When the engine applied the first update of service ``name`` after wall-clock
        time ``after``, from its own event (``timeNano``), as a ``time.monotonic()``
        value: the moment of a manual change, independent of how long the CLI took to
        start and exit."""
        offset = time.time() - time.monotonic()
        events = self.swarm.api.events(
            since=f"{after - 1:.9f}",
            until=f"{time.time():.9f}",
            filters={"type": ["service"], "event": ["update"]},
            decode=True,
        )
        try:
            for event in events:
                stamp = int(event.get("timeNano", 0)) / 1e9
                actor = event.get("Actor", {}).get("Attributes", {}).get("name")
                if actor == name and stamp >= after:
                    return stamp - offset
        finally:
            events.close()
        raise Timeout(f"no update event of {name} after {after}")

    def versions(self) -> dict[str, int]:
        """Every service's ``Version.Index``: any write to a service changes it."""
        return {
            str(s["Spec"]["Name"]): int(s["Version"]["Index"]) for s in self.swarm.api.services()
        }


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
