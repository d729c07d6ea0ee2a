"""The example repository of `gitswarm init`, synced to the real swarm end to end."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest
from ruamel.yaml import YAML

from tests.gitops import Cli
from tests.integration.swarm_helpers import running_tasks

pytestmark = pytest.mark.swarm


def test_example_development_syncs_healthy_and_a_version_bump_rolls_out(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    repo = tmp_path / "medianest-gitops"
    assert cli("init", str(repo)).exit_code == 0
    # A stack name of this test's own, so the run cannot collide with anything.
    yaml = YAML()
    settings = yaml.load((repo / "gitswarm.yml").read_text())
    settings["application"]["stack"] = stack_name
    # One stack name for every environment on one swarm would let one environment's
    # sync replace another's services: render refuses it. Only development here.
    settings["application"]["environments"] = ["development"]
    with (repo / "gitswarm.yml").open("w") as fh:
        yaml.dump(settings, fh)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    import subprocess

    subprocess.run([*git, "commit", "-qam", "test stack name"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()

    result = cli("sync", "--env", "development", "--repo", str(repo))
    assert result.exit_code == 0, result.output
    (status,) = cli.json("status", "--env", "development", "--repo", str(repo))["statuses"]
    assert (status["sync"], status["health"], status["head"], status["deployed"]) == (
        "Synced",
        "Healthy",
        head,
        head,
    )
    secrets = docker_client.api.secrets(
        filters={"label": f"com.docker.stack.namespace={stack_name}"}
    )
    assert [s["Spec"]["Name"].startswith(f"{stack_name}_jwt_secret_") for s in secrets] == [True]

    worker = running_tasks(docker_client, f"{stack_name}_medianest-worker")
    env_file = repo / "environments/development/.env"
    env_file.write_text(env_file.read_text().replace("APP_VERSION=1.0.0", "APP_VERSION=1.1.0"))
    subprocess.run([*git, "commit", "-qam", "app 1.1.0"], check=True)
    result = cli("sync", "--env", "development", "--repo", str(repo))
    assert result.exit_code == 0, result.output
    image = docker_client.api.inspect_service(f"{stack_name}_medianest-app")["Spec"][
        "TaskTemplate"
    ]["ContainerSpec"]["Image"]
    assert "medianest/app:1.1.0" in image
    assert running_tasks(docker_client, f"{stack_name}_medianest-worker") != worker  # same variable
