"""Docker clients per target and thread, reused (I/O edge).

The edges that deploy (cli/ops.py, cli/serve.py, bench/agentproc.py) each make one
``SwarmPool`` and pass it to the Reconciler and the agent as their ``swarm_for``; whoever
made it closes it (the agent closes the pools it was given on ``stop``). There is no
process-wide pool: two agents or two tests never share clients.

A commit names a target; the pool connects to the operator's definition of it (its
``TargetTable``, swarm/targets.py), through an ssh tunnel for ``ssh://`` targets. A target
that cannot be reached fails on its own: its clients are not cached, and for a few
seconds after a failed connection every caller is told the same problem at once rather
than each waiting on it (one unreachable swarm must not hold the workers that serve the
others).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from gitswarm.errors import SwarmError
from gitswarm.model.config import Target
from gitswarm.swarm.port import Swarm, SwarmClient
from gitswarm.swarm.targets import TargetTable
from gitswarm.swarm.tunnel import SshTunnel

RETRY_AFTER = 5.0  # seconds a failed connection is reported without trying again


class SwarmPool:
    """Docker clients per target and thread, reused: building one costs an API round
    trip (version negotiation), and docker-py's session is not shared across threads."""

    def __init__(
        self,
        factory: Callable[..., SwarmClient] | None = None,
        *,
        targets: TargetTable | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory or _docker_swarm
        self.targets = targets or TargetTable()
        self._clock = clock
        self._local = threading.local()
        self._all: list[SwarmClient] = []
        self._tunnels: dict[str, SshTunnel] = {}
        self._down: dict[str, tuple[float, str]] = {}
        self._starting: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def __call__(self, target: Target) -> Swarm:
        endpoint = self.targets.endpoint(target)
        clients: dict[Target, SwarmClient] = self._local.__dict__.setdefault("clients", {})
        client = clients.get(endpoint)
        if client is not None and self._tunnel_up(endpoint):
            return client
        client = clients[endpoint] = self.open(endpoint)
        with self._lock:
            self._all.append(client)
        return client

    def _tunnel_up(self, endpoint: Target) -> bool:
        if endpoint.scheme != "ssh":
            return True
        with self._lock:
            tunnel = self._tunnels.get(endpoint.name)
        return tunnel is not None and tunnel.alive()

    def open(self, target: Target, *, timeout: float | None = None) -> SwarmClient:
        """A new client of its own for ``target`` (not pooled: the caller closes it), e.g.
        for a long-lived event stream."""
        endpoint = self.targets.endpoint(target)
        with self._lock:
            down = self._down.get(endpoint.name)
        if down is not None and self._clock() < down[0]:
            raise SwarmError(f"{down[1]} (tried again in a few seconds)")
        kwargs: dict[str, object] = {} if timeout is None else {"timeout": timeout}
        try:
            if endpoint.scheme == "ssh":
                kwargs["host"] = self._tunnel(endpoint)
            client = self._factory(endpoint, **kwargs)
        except SwarmError as exc:
            with self._lock:
                self._down[endpoint.name] = (self._clock() + RETRY_AFTER, exc.message)
            raise
        with self._lock:
            self._down.pop(endpoint.name, None)
        return client

    def _tunnel(self, endpoint: Target) -> str:
        with self._lock:
            tunnel = self._tunnels.get(endpoint.name)
            if tunnel is None:
                tunnel = self._tunnels[endpoint.name] = SshTunnel(endpoint)
            starting = self._starting.setdefault(endpoint.name, threading.Lock())
        # One ssh per target even when threads race, under the target's own lock: starting
        # may wait on an unreachable host for many seconds, and the pool's lock would make
        # every other target wait with it.
        with starting:
            if tunnel.alive():
                return tunnel.url
            return tunnel.start()

    def clients(self) -> list[SwarmClient]:
        """Every client made so far, on any thread."""
        with self._lock:
            return list(self._all)

    def close(self) -> None:
        with self._lock:
            clients, self._all = self._all, []
            tunnels, self._tunnels = list(self._tunnels.values()), {}
        for client in clients:
            client.close()
        for tunnel in tunnels:
            tunnel.close()


def _docker_swarm(target: Target, **kwargs: Any) -> SwarmClient:
    """The default client: docker-py (imported on the first connection, so a pool that
    is given another factory, as ``gitswarm status``'s, never loads it)."""
    from gitswarm.swarm.client import DockerSwarm

    return DockerSwarm(target, **kwargs)


__all__ = ["SwarmPool"]
