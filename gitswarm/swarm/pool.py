"""Docker clients per target and thread, reused (I/O edge).

The edges that deploy (cli/ops.py, cli/serve.py, bench/agentproc.py) each make one
``SwarmPool`` and pass it to the Reconciler and the agent as their ``swarm_for``; whoever
made it closes it (the agent closes the pools it was given on ``stop``). There is no
process-wide pool: two agents or two tests never share clients.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gitswarm.model.config import Target
from gitswarm.swarm.client import DockerSwarm, Swarm


class SwarmPool:
    """Docker clients per target and thread, reused: building one costs an API round
    trip (version negotiation), and docker-py's session is not shared across threads."""

    def __init__(self, factory: Callable[[Target], DockerSwarm] = DockerSwarm) -> None:
        self._factory = factory
        self._local = threading.local()
        self._all: list[DockerSwarm] = []
        self._lock = threading.Lock()

    def __call__(self, target: Target) -> Swarm:
        clients: dict[Target, DockerSwarm] = self._local.__dict__.setdefault("clients", {})
        client = clients.get(target)
        if client is None:
            client = clients[target] = self._factory(target)
            with self._lock:
                self._all.append(client)
        return client

    def clients(self) -> list[DockerSwarm]:
        """Every client made so far, on any thread."""
        with self._lock:
            return list(self._all)

    def close(self) -> None:
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            client.close()


__all__ = ["SwarmPool"]
