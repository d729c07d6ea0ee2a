"""Services that leave Git: pruned when the policy says so, else reported as orphans;
services gitswarm does not own are never touched."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.gitops import Cli, GitOpsRepo, service
from tests.integration.swarm_helpers import versions

pytestmark = pytest.mark.swarm


def foreign_service(client: docker.DockerClient, stack: str, registry: str) -> str:
    name = f"{stack}_foreign"
    client.services.create(
        f"{registry}/busybox:1",
        name=name,
        labels={"com.docker.stack.namespace": stack},
        init=True,
    )
    return name


@pytest.mark.parametrize("prune", [True, False])
def test_a_service_removed_from_git(
    prune: bool,
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name, sync={"prune": prune, "health_timeout": 60})
    repo.compose({"web": service(), "old": service()})
    repo.commit("two")
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 0
    foreign = foreign_service(docker_client, stack_name, registry)

    repo.compose({"web": service()})
    repo.commit("old is gone")
    result = cli("sync", "--env", "dev", "--repo", str(repo.path))
    assert result.exit_code == 0, result.output
    names = set(versions(docker_client, stack_name))
    assert foreign in names  # never removed: gitswarm does not own it
    status = cli.json("status", "--env", "dev", "--repo", str(repo.path))["statuses"][0]
    if prune:
        assert f"{stack_name}_old" not in names
        assert status["sync"] == "Synced" and status["orphans"] == []
    else:
        assert f"{stack_name}_old" in names
        assert status["sync"] == "OutOfSync" and status["orphans"] == ["old"]
        text = cli("status", "--env", "dev", "--repo", str(repo.path)).output
        assert "orphan" in text and "old" in text
