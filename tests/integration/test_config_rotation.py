"""A changed config file rotates to a new content-addressed object; old ones are collected."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.gitops import Cli, GitOpsRepo, service
from tests.integration.swarm_helpers import object_names, running_tasks

pytestmark = pytest.mark.swarm


def config_of(client: docker.DockerClient, name: str) -> str:
    spec = client.api.inspect_service(name)["Spec"]["TaskTemplate"]["ContainerSpec"]
    (ref,) = spec["Configs"]
    return str(ref["ConfigName"])


def test_config_changes_rotate_and_old_versions_are_collected(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    repo = GitOpsRepo(
        tmp_path / "repo",
        stack_name,
        sync={"prune": True, "health_timeout": 60, "keep_versions": 2},
    )
    repo.compose(
        {
            "web": service(configs=[{"source": "app", "target": "/etc/app.conf"}]),
            "other": service(),
        },
        configs={"app": {"file": "./app.conf"}},
    )
    repo.write("base/app.conf", "version 0\n")
    repo.commit("with a config")
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 0
    other_tasks = running_tasks(docker_client, f"{stack_name}_other")
    used = [config_of(docker_client, f"{stack_name}_web")]
    for i in range(1, 6):
        repo.write("base/app.conf", f"version {i}\n")
        repo.commit(f"config {i}")
        result = cli("sync", "--env", "dev", "--repo", str(repo.path))
        assert result.exit_code == 0, result.output
        current = config_of(docker_client, f"{stack_name}_web")
        assert current not in used  # a new object name for new content
        assert current.startswith(f"{stack_name}_app_")
        used.append(current)
        names = object_names(docker_client, stack_name, "config")
        assert current in names
        assert len(names) <= 3  # the one in use + keep_versions
    names = object_names(docker_client, stack_name, "config")
    assert names == set(used[-3:])
    assert running_tasks(docker_client, f"{stack_name}_other") == other_tasks
