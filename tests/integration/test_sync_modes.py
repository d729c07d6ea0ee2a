"""Convergence on the real swarm for the services that are not "N replicas running":
a global service, `replicas: 0`, and a one-shot task (`restart_policy: none`) that runs
and exits — the unit tests of health/ check the verdicts on fakes; this checks what
Swarm really reports for them."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.gitops import Cli, GitOpsRepo, service
from tests.integration.swarm_helpers import image_of

pytestmark = pytest.mark.swarm


def _stack(image: str, migration: str) -> dict[str, object]:
    return {
        "node-agent": service(image, deploy={"mode": "global", "update_config": {"monitor": "1s"}}),
        "standby": service(image, deploy={"replicas": 0}),
        "migrate": {
            "image": image,
            "command": ["sh", "-c", f"echo {migration}"],
            "deploy": {"replicas": 1, "restart_policy": {"condition": "none"}},
        },
    }


def test_global_zero_replica_and_one_shot_services_converge(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name, sync={"prune": True, "health_timeout": 60})
    repo.compose(_stack("127.0.0.1:5000/busybox:1", "schema-v1"))
    repo.commit("global, zero and one-shot services")
    data = cli.json("sync", "--env", "dev", "--repo", str(repo.path))
    (outcome,) = data["results"]
    assert (data["_exit_code"], outcome["result"]) == (0, "Succeeded"), outcome

    tasks = docker_client.api.tasks(filters={"service": f"{stack_name}_migrate"})
    assert [t["Status"]["State"] for t in tasks] == ["complete"]
    assert (
        docker_client.api.tasks(
            filters={"service": f"{stack_name}_standby", "desired-state": "running"}
        )
        == []
    )
    running = docker_client.api.tasks(
        filters={"service": f"{stack_name}_node-agent", "desired-state": "running"}
    )
    assert len(running) == len(docker_client.nodes.list())

    # A new image for the global service and a new migration: both converge again.
    repo.compose(_stack("127.0.0.1:5000/busybox:2", "schema-v2"))
    repo.commit("v2")
    data = cli.json("sync", "--env", "dev", "--repo", str(repo.path))
    (outcome,) = data["results"]
    assert (data["_exit_code"], outcome["result"]) == (0, "Succeeded"), outcome
    assert "busybox:2" in image_of(docker_client, f"{stack_name}_node-agent")
    states = sorted(
        t["Status"]["State"]
        for t in docker_client.api.tasks(filters={"service": f"{stack_name}_migrate"})
    )
    assert states == ["complete", "complete"]
    status = cli.json("status", "--env", "dev", "--repo", str(repo.path))["statuses"][0]
    assert (status["sync"], status["health"]) == ("Synced", "Healthy"), status
