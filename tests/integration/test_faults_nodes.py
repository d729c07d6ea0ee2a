"""Faults of the swarm itself, on the private 3-node cluster: a worker's dockerd stops in
the middle of a rolling update, and the manager leader goes away during a sync. The
agent (in this process, following a real Git server) reports what Swarm did, and the
status it records is what the cluster really runs once the dust settles."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness import cluster as clustermod
from harness.gitserve import GitRemote
from harness.images import IMAGES
from harness.system import HarnessError
from tests.conftest import client_of
from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.integration.swarm_helpers import image_of

pytestmark = [pytest.mark.swarm, pytest.mark.multinode, pytest.mark.faults]

V1, V2 = IMAGES[0].ref, IMAGES[1].ref  # busybox:1, busybox:2 from every node's registry


def rolling(image: str) -> dict[str, object]:
    """Three replicas, updated one at a time, 2 s apart: a rollout of several seconds."""
    return service(
        image,
        deploy={
            "replicas": 3,
            "update_config": {"parallelism": 1, "delay": "2s", "monitor": "1s",
                              "order": "stop-first", "failure_action": "rollback"},
        },
    )  # fmt: skip


def running_images(client: docker.DockerClient, name: str) -> list[str]:
    """The images of the tasks that run, as ``docker service ls`` counts them: reported
    running, on a node that is not down (a lost node's tasks keep saying running)."""
    down = {n["ID"] for n in client.api.nodes() if n["Status"]["State"] == "down"}
    tasks = client.api.tasks(filters={"service": name, "desired-state": "running"})
    return sorted(
        t["Spec"]["ContainerSpec"]["Image"].split("@")[0]
        for t in tasks
        if t["Status"]["State"] == "running" and t.get("NodeID") not in down
    )


@contextlib.contextmanager
def mid_rollout(rig: AgentRig, message: str) -> Iterator[str]:
    """An agent that deployed three replicas of busybox:1, in the middle of the rolling
    update to busybox:2 (its sync Running); yields that revision."""
    first = rig.push({"web": rolling(V1)}, "three replicas")
    with running_rig(rig, poll_interval=0.5, poll_jitter=0.0):
        wait_for(rig.deployed(first), 120)
        second = rig.push({"web": rolling(V2)}, message)
        wait_for(lambda: any(o.result == "Running" and o.revision == second
                             for o in rig.operations("sync")), 30)  # fmt: skip
        yield second


def task_table(client: docker.DockerClient, name: str) -> str:
    """Every task of ``name`` with its node and that node's state as the manager sees it
    (printed with the outcome: what Swarm did is the evidence of a fault test)."""
    nodes = {n["ID"]: (n["Description"]["Hostname"], n["Status"]["State"])
             for n in client.api.nodes()}  # fmt: skip
    rows = []
    for t in sorted(client.api.tasks(filters={"service": name}),
                    key=lambda t: (t.get("Slot", 0), t["CreatedAt"])):  # fmt: skip
        host, state = nodes.get(t.get("NodeID", ""), ("-", "-"))
        image = t["Spec"]["ContainerSpec"]["Image"].split("@")[0].rsplit("/", 1)[-1]
        rows.append(f"slot {t.get('Slot')} {host}({state}) {image} "
                    f"desired={t['DesiredState']} state={t['Status']['State']}")  # fmt: skip
    return "\n  ".join(rows)


def agent_on(host: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", host)
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp / "keys"))


def test_a_worker_lost_during_a_rolling_update_is_reported_and_the_status_is_true(
    cluster: clustermod.Cluster,
    cluster_client: docker.DockerClient,
    git_remote: GitRemote,
    tmp_path: Path,
    cluster_stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent_on(cluster.manager_host, tmp_path, monkeypatch)
    stack, name = cluster_stack_name, f"{cluster_stack_name}_web"
    rig = AgentRig(git_remote, tmp_path, stack)
    # Swarm cannot finish this update with a worker gone (observed: it neither
    # reschedules nor rolls back within 90 s); the sync gives up at the health timeout,
    # and what it asserts is the same at 25 s as it was at 90.
    rig.sync["health_timeout"] = 25
    try:
        with mid_rollout(rig, "rolling update to busybox:2") as second:
            cluster.stop_node(3)  # a worker goes away mid-rollout
            lost = time.monotonic()
            wait_for(lambda: any(o.revision == second and o.result != "Running"
                                 for o in rig.operations("sync")), 150)  # fmt: skip
            (op,) = [o for o in rig.operations("sync") if o.revision == second]
            status = rig.status()
            live = running_images(cluster_client, name)
            print(f"tasks when the sync ended:\n  {task_table(cluster_client, name)}")
            ops = [(o.kind, o.revision[:8], o.result, o.reason, o.message)
                   for o in rig.operations()]  # fmt: skip
            print(f"operations: {ops}")
            print(f"status: {status}")
            if op.result == "Succeeded":  # Swarm rescheduled node 3's task: 3 on 2 nodes
                assert live == [V2] * 3, live
                assert status.revision == second and status.health == "Healthy"
            else:  # Swarm gave up (rolled back / timed out): said so, and degraded
                assert op.reason, op
                assert status.health == "Degraded" and status.last_result != "Succeeded"
            # The manager marks a node down only after missed heartbeats (seconds); a
            # rollout that ended sooner ended before it knew.
            cluster.wait_node_state(3, "down", 60)
            print(f"FAULT worker lost mid-rollout: {op.result} {op.reason or ''} "
                  f"{time.monotonic() - lost:.1f}s after the loss; running {live}")  # fmt: skip
    finally:
        cluster.start_node(3)


def test_the_manager_leader_lost_during_a_sync_fails_loudly_and_recovers(
    cluster: clustermod.Cluster,
    cluster_client: docker.DockerClient,
    git_remote: GitRemote,
    tmp_path: Path,
    cluster_stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With nodes 2 and 3 promoted, node 1 (the leader) stops during a sync that talks to
    node 2: a new leader is elected; the agent's sync fails with a retryable reason while
    there is none, and the retried sync converges and records the truth."""
    ids = cluster.node_ids()  # node id -> index
    others = [nid for nid, i in ids.items() if i != 1]
    cluster.docker(1, "node", "promote", *others)
    agent_on(cluster.node_host(2), tmp_path, monkeypatch)
    stack, name = cluster_stack_name, f"{cluster_stack_name}_web"
    rig = AgentRig(git_remote, tmp_path, stack)
    try:
        with mid_rollout(rig, "update while the leader dies") as second:
            cluster.stop_node(1)
            took = wait_for(rig.deployed(second), 180)
            results = [(o.result, o.reason) for o in rig.operations("sync") if o.revision == second]
            with client_of(cluster.node_host(2)) as client:
                assert running_images(client, name) == [V2] * 3
                assert "busybox:2" in image_of(client, name)
            assert ("Succeeded", None) in results, results
            print(f"FAULT leader lost: {results}; healthy {took:.1f}s after the loss")
    finally:
        cluster.start_node(1)
        cluster.wait_nodes_ready(120)
        demote_when_led(cluster, others)


def demote_when_led(cluster: clustermod.Cluster, nodes: list[str], timeout: float = 90) -> None:
    """Make ``nodes`` workers again, once the managers (node 1 back among them) have a
    leader: raft refuses while an election runs ("node lost leader status")."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster.docker(1, "node", "demote", *nodes)
            return
        except HarnessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def everywhere(image: str) -> dict[str, object]:
    """A global service (one task per node), updated one node at a time."""
    return service(
        image,
        deploy={"mode": "global",
                "update_config": {"parallelism": 1, "monitor": "1s", "order": "stop-first"}},
    )  # fmt: skip


def swarm_counts(client: docker.DockerClient, name: str) -> tuple[int, int]:
    """(running, desired) as the engine counts them for ``docker service ls``."""
    (found,) = client.api.services(filters={"name": name}, status=True)
    status = found["ServiceStatus"]
    return int(status["RunningTasks"]), int(status["DesiredTasks"])


def test_a_global_service_with_a_worker_down_is_what_swarm_says_and_recovers(
    cluster: clustermod.Cluster,
    cluster_client: docker.DockerClient,
    git_remote: GitRemote,
    tmp_path: Path,
    cluster_stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One worker's dockerd stops under a global service. Swarm shuts its task down and
    counts the service complete on the other two nodes (desired 2), completes an update
    there, and starts a task on the node when it is back. gitswarm agrees: the sync of
    an update succeeds, the health round and ``status --live`` say Healthy with 2/2
    running and name the node that runs none, and Healthy 3/3 once it is back."""
    agent_on(cluster.manager_host, tmp_path, monkeypatch)
    stack, name = cluster_stack_name, f"{cluster_stack_name}_web"
    node3 = cluster.node_id(3)
    rig = AgentRig(git_remote, tmp_path, stack)
    cluster.wait_nodes_ready(120)  # a node an earlier test stopped is back
    first = rig.push({"web": everywhere(V1)}, "a task on every node")
    try:
        with running_rig(rig, poll_interval=0.5, poll_jitter=0.0, drift_interval=1.0):
            wait_for(rig.deployed(first), 120)
            # Healthy means complete as Swarm counts: once (in CI) that was 2 of 2 tasks,
            # the global orchestrator not yet having started one on a node that had just
            # come back. Swarm's pace; what gitswarm says must be Swarm's count.
            try:
                wait_for(lambda: running_images(cluster_client, name) == [V1] * 3, 90)
            except AssertionError as exc:  # Swarm's side: which node runs none, and why
                raise AssertionError(
                    f"{exc}\nSwarm counts {swarm_counts(cluster_client, name)}; nodes "
                    f"{cluster.nodes_state()}; tasks:\n  {task_table(cluster_client, name)}"
                ) from None
            wait_for(lambda: swarm_counts(cluster_client, name) == (3, 3), 30)
            wait_for(lambda: (_live(rig)["services"][0]["running"],
                              _live(rig)["services"][0]["desired"]) == (3, 3), 30)  # fmt: skip
            cluster.stop_node(3)
            lost = time.monotonic()
            cluster.wait_node_state(3, "down", 60)
            # Swarm's own answer, once it has shut the lost node's task down
            wait_for(lambda: swarm_counts(cluster_client, name)[1] == 2, 30)
            health_seen: set[str] = set()

            def watched_health() -> str:
                health = str(rig.status().health)
                health_seen.add(health)
                return health

            time.sleep(3.0)  # three health rounds with the node down
            assert watched_health() == "Healthy"
            live = _live(rig)
            (web,) = live["services"]
            assert (live["health"], web["running"], web["desired"]) == ("Healthy", 2, 2), live
            assert f"no task on node {node3[:12]} (down)" in web["message"], web

            # An update while the node is down: Swarm updates the two nodes that are up
            second = rig.push({"web": everywhere(V2)}, "update with a node down")
            took = wait_for(lambda: any(o.revision == second and o.result != "Running"
                                        for o in rig.operations("sync")), 120)  # fmt: skip
            (op,) = [o for o in rig.operations("sync") if o.revision == second]
            print(f"tasks after the update:\n  {task_table(cluster_client, name)}")
            assert (op.result, op.reason) == ("Succeeded", None), op
            assert running_images(cluster_client, name) == [V2] * 2
            assert swarm_counts(cluster_client, name)[1] == 2
            time.sleep(2.0)
            assert watched_health() == "Healthy" and rig.status().revision == second
            print(f"FAULT global service, worker down: sync {op.result} {took:.1f}s; "
                  f"Swarm desired {swarm_counts(cluster_client, name)}; health Healthy 2/2 "
                  f"({time.monotonic() - lost:.1f}s after the loss)")  # fmt: skip

            # The node is back: Swarm starts the new version there, and gitswarm says 3/3
            # Healthy. How soon Swarm does is Swarm's (5.6 s on a quiet machine; once in CI
            # not within 90 s): if it has not, gitswarm must say what Swarm counts instead.
            cluster.start_node(3)
            try:
                back: float | None = wait_for(
                    lambda: running_images(cluster_client, name) == [V2] * 3, 90
                )
            except AssertionError:
                back = None
            if back is None:
                print(f"Swarm ran no new task on the returned node within 90 s:\n  "
                      f"{task_table(cluster_client, name)}")  # fmt: skip

                def agrees() -> bool:
                    (web,) = _live(rig)["services"]
                    return (web["running"], web["desired"]) == swarm_counts(cluster_client, name)

                wait_for(agrees, 30)
                assert [o.result for o in rig.operations("sync")] == ["Succeeded", "Succeeded"]
                return
            wait_for(lambda: _live(rig)["services"][0]["running"] == 3, 30)
            live = _live(rig)
            assert (live["health"], live["sync"]) == ("Healthy", "Synced"), live
            assert "(down)" not in live["services"][0]["message"], live
            wait_for(lambda: watched_health() == "Healthy", 10)
            assert health_seen == {"Healthy"}, health_seen
            assert [o.result for o in rig.operations("sync")] == ["Succeeded", "Succeeded"]
            print(f"FAULT global service, worker back: 3/3 {V2} {back:.1f}s after its start")
    finally:
        cluster.start_node(3)


def _live(rig: AgentRig) -> dict[str, Any]:
    """``gitswarm status --live --json`` of the rig's app, as a user runs it."""
    exe = str(Path(sys.executable).with_name("gitswarm"))
    argv = [exe, "status", "--live", "--json", "--repo", rig.remote.url,
            "--state", str(rig.tmp / "state.db")]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["statuses"]
    data: dict[str, Any] = row
    return data
