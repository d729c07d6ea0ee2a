"""``gitswarm bootstrap`` on the real swarm: the example's development, synced, then its
stack removed entirely (an emptied or new swarm), is rebuilt from Git alone — with a new,
empty state store — to Synced/Healthy; and what the swarm lacks is said before anything
is deployed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import pytest
from ruamel.yaml import YAML

from tests.conftest import remove_stack_objects, swarm_objects
from tests.gitops import Cli
from tests.integration.swarm_helpers import running_tasks

pytestmark = [pytest.mark.swarm, pytest.mark.registry]


def _example(cli: Cli, repo: Path, stack: str) -> str:
    """The example of `gitswarm init`, development only, on stack ``stack``; its head."""
    assert cli("init", str(repo)).exit_code == 0
    yaml = YAML()
    settings = yaml.load((repo / "gitswarm.yml").read_text())
    settings["application"]["stack"] = stack
    settings["application"]["environments"] = ["development"]
    with (repo / "gitswarm.yml").open("w") as fh:
        yaml.dump(settings, fh)
    return _commit(repo, "test stack name")


def _commit(repo: Path, message: str) -> str:
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "commit", "-qam", message], check=True)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_bootstrap_rebuilds_the_emptied_example_from_git_alone(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    repo = tmp_path / "medianest-gitops"
    head = _example(cli, repo, stack_name)
    result = cli("sync", "--env", "development", "--repo", str(repo))
    assert result.exit_code == 0, result.output

    # The disaster: the stack is gone from the swarm (services, configs, secrets,
    # networks), and so is the state store: only Git and the age keys are left.
    remove_stack_objects(docker_client, stack_name)
    assert not {x for x in swarm_objects(docker_client) if stack_name in x}
    fresh = tmp_path / "new-state.db"

    result = cli("bootstrap", "--env", "development", "--repo", str(repo), "--state", str(fresh))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"bootstrap development at {head[:12]}: medianest"
    assert lines[-1] == "development restored: 1 application(s) Synced and Healthy"
    (row,) = [line for line in lines if line.startswith("medianest ")]
    assert row.split()[:5] == ["medianest", "Succeeded", "Synced", "Healthy", head[:12]]
    (status,) = cli.json(
        "status", "--env", "development", "--repo", str(repo), "--state", str(fresh)
    )["statuses"]
    assert (status["sync"], status["health"], status["deployed"]) == ("Synced", "Healthy", head)
    for service in ("medianest-app", "medianest-worker"):
        assert len(running_tasks(docker_client, f"{stack_name}_{service}")) == 1
    secrets = docker_client.api.secrets(
        filters={"label": f"com.docker.stack.namespace={stack_name}"}
    )
    assert [s["Spec"]["Name"].startswith(f"{stack_name}_jwt_secret_") for s in secrets] == [True]


def test_bootstrap_lists_what_the_swarm_lacks_and_deploys_nothing(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    repo = tmp_path / "medianest-gitops"
    _example(cli, repo, stack_name)
    overlay = repo / "environments/development/docker-compose.yml"
    proxy, tls = f"{stack_name}-proxy", f"{stack_name}-tls"
    overlay.write_text(
        overlay.read_text() + f"    networks: [backend, proxy]\n    secrets: [jwt_secret, tls]\n"
        f"networks:\n  proxy: {{external: true, name: {proxy}}}\n"
        f"secrets:\n  tls: {{external: true, name: {tls}}}\n"
    )
    head = _commit(repo, "behind the shared proxy")

    result = cli("bootstrap", "--env", "development", "--repo", str(repo))

    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        f"bootstrap development at {head[:12]}: medianest",
        f"  medianest: external network '{proxy}' is missing (used by medianest-app); "
        f"create it: docker network create --driver overlay --attachable {proxy}",
        f"  medianest: external secret '{tls}' is missing (used by medianest-app); "
        f"create it: docker secret create {tls} FILE",
        "nothing was deployed: 2 problem(s) to fix first",
    ]
    assert not {x for x in swarm_objects(docker_client) if stack_name in x}
