"""The 3-node harness: tasks spread over three real nodes, a stopped node's task moves,
and a cluster whose owner was killed with SIGKILL is removed by the next run."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from harness import system
from harness.cluster import Cluster
from harness.images import IMAGES

pytestmark = pytest.mark.multinode

IMAGE = IMAGES[0].ref  # 127.0.0.1:5000/busybox:1, served by every node's own registry
REPO = Path(__file__).resolve().parents[2]


def running_nodes(client: docker.DockerClient, cluster: Cluster, service: str) -> list[int]:
    """Indexes of the nodes with a running task of ``service`` (one entry per task)."""
    ids = cluster.node_ids()
    tasks = client.api.tasks(filters={"service": service, "desired-state": "running"})
    return sorted(ids[t["NodeID"]] for t in tasks if t["Status"]["State"] == "running")


def explain(cluster: Cluster | None) -> str:
    """The manager's view of nodes and tasks, for a failure message."""
    if cluster is None:
        return ""
    services = cluster.docker(1, "service", "ls", "-q", check=False).split()
    return "\n".join(
        [
            cluster.docker(1, "node", "ls", check=False),
            *(cluster.docker(1, "service", "ps", svc, check=False) for svc in services),
        ]
    )


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, cluster: Cluster | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{explain(cluster)}")
        time.sleep(0.1)


def create_service(
    client: docker.DockerClient, stack: str, name: str, **kwargs: object
) -> docker.models.services.Service:
    return client.services.create(
        IMAGE,
        name=f"{stack}_{name}",
        labels={"com.docker.stack.namespace": stack},
        container_labels={"com.docker.stack.namespace": stack},
        init=True,
        restart_policy=docker.types.RestartPolicy(condition="any", delay=0),
        **kwargs,
    )


def test_cluster_has_one_manager_and_two_workers_on_their_own_addresses(
    cluster: Cluster,
) -> None:
    rows = cluster.swarm_nodes()
    assert sorted(rows) == [1, 2, 3]
    assert [rows[i]["Status"] for i in (1, 2, 3)] == ["Ready"] * 3
    assert rows[1]["ManagerStatus"] == "Leader"
    assert rows[2]["ManagerStatus"] == rows[3]["ManagerStatus"] == ""
    engine_ids = {cluster.docker(i, "info", "--format", "{{.ID}}").strip() for i in (1, 2, 3)}
    assert len(engine_ids) == 3  # each node has its own /etc/docker/key.json
    addrs = {
        cluster.docker(i, "info", "--format", "{{.Swarm.NodeAddr}}").strip() for i in (1, 2, 3)
    }
    assert addrs == {cluster.node_addr(i) for i in (1, 2, 3)}
    routes = system.run(system.in_netns(cluster.node_netns(2), ["ip", "route", "show"]))
    assert "default" not in routes


def test_three_replicas_run_on_three_distinct_nodes(
    cluster: Cluster, cluster_client: docker.DockerClient, cluster_stack_name: str
) -> None:
    service = create_service(
        cluster_client,
        cluster_stack_name,
        "web",
        mode=docker.types.ServiceMode("replicated", replicas=3),
        maxreplicas=1,
        endpoint_spec=docker.types.EndpointSpec(ports={8080: (4000, "tcp", "host")}),
    )
    wait_for(
        lambda: len(running_nodes(cluster_client, cluster, service.name)) == 3,
        60,
        "three running tasks",
        cluster,
    )
    assert running_nodes(cluster_client, cluster, service.name) == [1, 2, 3]
    # Each node answers on its own address, seen from the bridge (host-mode ports).
    for i in (1, 2, 3):
        assert cluster.http_get(f"http://{cluster.node_addr(i)}:8080/version") == "1\n"
    # Nodes 2 and 3 pulled the image from their own registry: the same image everywhere.
    image_ids = {cluster.docker(i, "image", "inspect", "-f", "{{.Id}}", IMAGE) for i in (1, 2, 3)}
    assert len(image_ids) == 1


def test_a_stopped_nodes_task_is_rescheduled_and_the_node_comes_back(
    cluster: Cluster, cluster_client: docker.DockerClient, cluster_stack_name: str
) -> None:
    service = create_service(
        cluster_client,
        cluster_stack_name,
        "one",
        constraints=["node.role==worker"],
    )
    wait_for(lambda: running_nodes(cluster_client, cluster, service.name), 60, "a task", cluster)
    (victim,) = running_nodes(cluster_client, cluster, service.name)
    other = 5 - victim  # the other worker: 2 <-> 3
    started = time.monotonic()
    cluster.stop_node(victim)
    try:
        wait_for(
            lambda: running_nodes(cluster_client, cluster, service.name) == [other],
            60,
            f"the task to move from node {victim} to node {other}",
            cluster,
        )
        moved = time.monotonic() - started
        assert cluster.nodes_state()[f"n{victim}"] == "down"
    finally:
        cluster.start_node(victim)
    assert cluster.nodes_state()[f"n{victim}"] == "ready"
    # No bound of the test's own: how soon Swarm reschedules is Swarm's (heartbeats), and
    # the wait above holds it to 60 s; the figure is for the reader (~7 s quiet).
    print(f"rescheduled {moved:.1f}s after the node stopped")


def test_a_node_killed_with_sigkill_starts_again_and_runs_its_task(
    cluster: Cluster, cluster_client: docker.DockerClient, cluster_stack_name: str
) -> None:
    service = create_service(
        cluster_client,
        cluster_stack_name,
        "web",
        mode=docker.types.ServiceMode("replicated", replicas=3),
        maxreplicas=1,
    )
    wait_for(
        lambda: running_nodes(cluster_client, cluster, service.name) == [1, 2, 3],
        60,
        "a task on every node",
        cluster,
    )
    cluster.stop_node(3, kill=True)  # a crash: containerd goes too, the container runs on
    cluster.start_node(3)  # at once: before the manager even noticed
    wait_for(
        lambda: running_nodes(cluster_client, cluster, service.name) == [1, 2, 3],
        60,
        "a task on every node again",
        cluster,
    )


def test_a_cluster_whose_owner_was_killed_is_reaped(tmp_path: Path) -> None:
    """kill -9 of the run, and of one node's dockerd/containerd/shims too: the next
    ``reap_stale()`` removes engines, orphaned containers, registries, namespaces, folders."""
    name = f"k{uuid.uuid4().hex[:5]}"
    script = f"""
import time
from harness import cluster
c = cluster.up({name!r})
c.docker(1, "service", "create", "--detach", "--init", "--name", "web", "--replicas", "3",
         "--replicas-max-per-node", "1", {IMAGE!r})
while not c.docker(1, "service", "ls", "--format", "{{{{.Replicas}}}}").startswith("3/3"):
    time.sleep(0.1)
print("ready", flush=True)
time.sleep(600)
"""
    log = tmp_path / "child.log"
    with (
        log.open("wb") as err,
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=err
        ) as child,
    ):
        try:
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], 90)
            assert ready and child.stdout.readline() == b"ready\n", log.read_text()
            root = Path("/var/tmp/gsc") / name
            node3 = system.processes_naming(f"{root}/n3/")
            orphans = system.cgroup_pids(f"gitswarm-harness-{name}n3")
            assert node3 and orphans
            child.kill()
            child.wait()
            for proc in node3:  # a crash of node 3 too: its container runs on, orphaned
                os.kill(proc.pid, signal.SIGKILL)

            assert system.leftovers(child.pid)  # all still there
            reaped = system.reap_stale()

            assert f"cluster {name}" in reaped
            assert system.leftovers(child.pid) == []
            assert not any(system.pid_alive(pid) for pid in orphans)
            assert not root.exists()
            assert not any(system.netns_exists(f"gsc-{name}{s}") for s in ("", "-1", "-2", "-3"))
        finally:
            child.kill()
            system.clean(child.pid)
