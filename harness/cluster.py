"""A private 3-node Docker swarm: three dockerd, each in its own network namespace.

Layout (all of it inside namespaces this module creates; nothing in the host's)::

    netns gsc-<name>          bridge br0 10.213.0.1/24, one veth port per node
    netns gsc-<name>-<i>      eth0 10.213.0.1<i>/24 (no default route), lo;
                              dockerd of node i (hostname n<i>, own /etc/docker),
                              docker-registry on 127.0.0.1:5000

Node 1 runs ``swarm init``, nodes 2 and 3 join as workers: one manager keeps the control
plane out of the way when a test stops a node (any of nodes 2 and 3 can go down without a
leader election), and a manager also runs tasks, so three replicas spread over three nodes.

Images: every node has its own registry on 127.0.0.1:5000, all three sharing one storage
folder, so the references of ``harness.images.IMAGES`` (and the example repository's
``REGISTRY=127.0.0.1:5000``) resolve the same on every node, and Swarm pins the same
digest everywhere. The images are imported into node 1 and pushed once.

Used by the ``cluster`` fixture of the test suite (``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from harness.engine import PrivateEngine, ensure_tools
from harness.images import REGISTRY, Registry, build_all
from harness.system import (
    HarnessError,
    create_netns,
    delete_netns,
    in_netns,
    journal,
    reap_stale,
    rmtree,
    run,
)

CLUSTER_ROOT = Path(os.environ.get("GITSWARM_CLUSTER_ROOT", "/var/tmp/gsc"))
SUBNET = "10.213.0"  # a /24 that exists only inside the cluster's own namespaces

T = TypeVar("T")


def _parallel(fn: Callable[[int], T], indexes: list[int]) -> list[T]:
    """``fn(i)`` for every index at once; the first error is raised after all finished."""
    with ThreadPoolExecutor(max_workers=max(1, len(indexes))) as pool:
        futures = [pool.submit(fn, i) for i in indexes]
    return [f.result() for f in futures]


@dataclass
class Cluster:
    """Three swarm nodes. Nodes are numbered 1..size; node 1 is the manager.

    ``heartbeat`` is the swarm's dispatcher heartbeat: the manager marks a node down after
    missing about three (2 s: a stopped node is down in ~4-6 s; Docker's 5 s: ~15 s).
    """

    name: str
    root: Path
    size: int = 3
    heartbeat: str = "2s"
    owner: int = field(default_factory=os.getpid)
    nodes: list[PrivateEngine] = field(default_factory=list, repr=False)
    registries: list[Registry] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = [
                PrivateEngine(
                    name=f"{self.name}n{i}",
                    root=self.root / f"n{i}",
                    netns=self.node_netns(i),
                    manage_netns=False,
                    hostname=f"n{i}",
                    owner=self.owner,
                )
                for i in self.indexes
            ]
            self.registries = [
                Registry(
                    root=self.root / f"reg{i}",
                    netns=self.node_netns(i),
                    storage=self.root / "registry-data",
                    owner=self.owner,
                )
                for i in self.indexes
            ]

    # --- addresses and handles ---------------------------------------------------------

    @property
    def indexes(self) -> list[int]:
        return list(range(1, self.size + 1))

    @property
    def lab_netns(self) -> str:
        return f"gsc-{self.name}"

    def node_netns(self, i: int) -> str:
        return f"gsc-{self.name}-{i}"

    @property
    def bridge_addr(self) -> str:
        return f"{SUBNET}.1"

    def node_addr(self, i: int) -> str:
        return f"{SUBNET}.{10 + i}"

    def node(self, i: int) -> PrivateEngine:
        if i not in self.indexes:
            raise IndexError(f"cluster {self.name} has nodes 1..{self.size}, not {i}")
        return self.nodes[i - 1]

    def node_host(self, i: int) -> str:
        """``DOCKER_HOST`` of node ``i`` (1-based)."""
        return self.node(i).docker_host

    @property
    def manager_host(self) -> str:
        """``DOCKER_HOST`` of the manager (node 1): where stacks are deployed."""
        return self.node_host(1)

    @property
    def registry(self) -> str:
        """The registry address, the same on every node."""
        return REGISTRY

    def docker(self, i: int, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        return self.node(i).docker(*args, check=check, timeout=timeout)

    def node_id(self, i: int) -> str:
        return self.docker(i, "info", "--format", "{{.Swarm.NodeID}}").strip()

    def in_lab(self, cmd: list[str]) -> list[str]:
        """A command line run from the bridge's namespace (a client next to the nodes)."""
        return in_netns(self.lab_netns, cmd)

    def http_get(self, url: str, timeout: float = 5.0) -> str | None:
        """GET ``url`` from the bridge's namespace (e.g. a host-mode port of a node)."""
        try:
            out = run(
                self.in_lab(["timeout", str(int(timeout)), "busybox", "wget", "-q", "-O-", url]),
                timeout=timeout + 2,
            )
        except HarnessError:
            return None
        return out

    # --- life cycle --------------------------------------------------------------------

    def up(self, *, images: bool = True) -> Cluster:
        """Namespaces, bridge, registries, engines, swarm, images; all removed on failure."""
        ensure_tools()
        journal(
            self.owner,
            "cluster",
            self.name,
            netns=[self.lab_netns, *(self.node_netns(i) for i in self.indexes)],
            dirs=[self.root],
        )
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._network()
            _parallel(lambda i: self.registries[i - 1].start(), self.indexes)
            _parallel(lambda i: self.node(i).start(), self.indexes)
            self._swarm()
            if images:
                build_all(self.node(1))
            self.wait_nodes_ready()
        except BaseException:
            self.down()
            raise
        return self

    def _network(self) -> None:
        lab = self.lab_netns
        create_netns(lab)
        run(["ip", "-n", lab, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", lab, "addr", "add", f"{self.bridge_addr}/24", "dev", "br0"])
        run(["ip", "-n", lab, "link", "set", "br0", "up"])
        for i in self.indexes:
            ns = self.node_netns(i)
            create_netns(ns)
            port = f"n{i}"
            veth = ["veth", "peer", "name", "eth0", "netns", ns]
            run(["ip", "-n", lab, "link", "add", port, "type", *veth])
            run(["ip", "-n", lab, "link", "set", port, "master", "br0", "up"])
            run(["ip", "-n", ns, "addr", "add", f"{self.node_addr(i)}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def _swarm(self) -> None:
        manager = self.node(1)
        manager.swarm_init(self.node_addr(1), "--dispatcher-heartbeat", self.heartbeat)
        token = manager.docker("swarm", "join-token", "-q", "worker").strip()
        join = f"{self.node_addr(1)}:2377"
        _parallel(
            lambda i: self.docker(
                i, "swarm", "join", "--token", token, "--advertise-addr", self.node_addr(i), join
            ),
            self.indexes[1:],
        )

    def down(self) -> None:
        """Stop every engine and registry; remove the namespaces, bridge and folders."""
        try:
            # No graceful stop: the swarm goes as a whole, and a worker whose manager is
            # gone waits 5 s for the ingress network on SIGTERM.
            _parallel(lambda i: self.node(i).stop(remove=False, graceful=False), self.indexes)
            for registry in self.registries:
                registry.stop()
        finally:
            # Deleting a namespace deletes its interfaces: the bridge and both veth ends.
            for ns in [*(self.node_netns(i) for i in self.indexes), self.lab_netns]:
                delete_netns(ns)
            rmtree(self.root)
            with contextlib.suppress(OSError):
                self.root.parent.rmdir()

    # --- node failures -----------------------------------------------------------------

    def swarm_nodes(self) -> dict[int, dict[str, str]]:
        """Node index → the manager's ``docker node ls`` row (ID, Status, Availability...)."""
        out = self.docker(1, "node", "ls", "--format", "{{json .}}")
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {int(row["Hostname"][1:]): row for row in rows if row["Hostname"][1:].isdigit()}

    def node_ids(self) -> dict[str, int]:
        """Swarm node ID → node index (to tell on which node a task runs)."""
        return {row["ID"]: i for i, row in self.swarm_nodes().items()}

    def nodes_state(self) -> dict[str, str]:
        """Hostname → ``ready`` / ``down`` / ``unknown`` as the manager sees it."""
        return {f"n{i}": row["Status"].lower() for i, row in self.swarm_nodes().items()}

    def wait_node_state(self, i: int, state: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(HarnessError):  # a manager that just started: no leader
                seen = self.nodes_state()
            if seen.get(f"n{i}") == state:
                return
            time.sleep(0.2)
        raise HarnessError(f"node n{i} of cluster {self.name} not {state} in {timeout}s: {seen}")

    def wait_nodes_ready(self, timeout: float = 60.0) -> None:
        for i in self.indexes:
            self.wait_node_state(i, "ready", timeout)

    def stop_node(self, i: int, *, kill: bool = False) -> None:
        """Stop node ``i``'s dockerd: gently (its containers stop too), or ``kill`` -9.

        After ``kill`` its containers run on until ``start_node`` (as after a real crash).
        The node's namespace, address and registry stay. Node 1 is the only manager:
        while it is down nothing is scheduled and ``nodes_state()`` cannot answer.
        """
        node = self.node(i)
        if kill:
            node.kill()
        else:
            node.stop(remove=False)

    def start_node(self, i: int, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Start node ``i``'s dockerd again; with ``wait``, until the manager sees it ready."""
        node = self.node(i)
        if node.running:
            return
        node.start()
        if not wait:
            return
        # A restarted manager waits for every running node to report back.
        for j in self.indexes if i == 1 else [i]:
            if self.node(j).running:
                self.wait_node_state(j, "ready", timeout)


def up(name: str | None = None, *, images: bool = True, size: int = 3) -> Cluster:
    """Start a cluster; ``name`` must be short (socket paths) and unique among live runs."""
    reap_stale()
    name = name or f"c{os.getpid()}"
    if len(name) > 12:
        raise HarnessError(f"cluster name {name!r} is too long (12 characters at most)")
    return Cluster(name=name, root=CLUSTER_ROOT / name, size=size).up(images=images)
