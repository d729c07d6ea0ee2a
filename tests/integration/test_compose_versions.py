"""Stacks of every Compose version 3.0-3.9, in the shapes public Swarm stacks have, sync
to Synced/Healthy on the real swarm (tests/integration/stack_shapes.py has the shapes).

Each test creates the external overlay network and volume its stack expects, as a user
does before deploying such a stack, and removes them once the stack is gone. The
services' healthchecks look for the mounted config, secret and volume, and the test
reads the deployed specs to see that the external objects are the ones used.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from gitswarm.render.secrets import Identity, encrypt
from tests.conftest import Cleaner, SwarmUnderTest
from tests.gitops import Cli, GitOpsRepo
from tests.integration.stack_shapes import DB_PASSWORD, VERSIONS, public_stack

pytestmark = pytest.mark.swarm

IDENTITY = Identity.generate()
FIRST_PORT = 18300  # each version its own host port: the last stack may still be leaving


class External:
    """An external overlay network and volume for one test's stack."""

    def __init__(self, client: docker.DockerClient) -> None:
        tag = uuid.uuid4().hex[:8]
        self.network = client.networks.create(f"gs-public-{tag}", driver="overlay")
        self.volume = client.volumes.create(f"gs-pgdata-{tag}")

    def remove(self, client: docker.DockerClient) -> None:
        removals = (
            lambda: client.api.remove_network(self.network.id),
            lambda: client.api.remove_volume(self.volume.name),
        )
        for remove in removals:
            for _ in range(150):
                try:
                    remove()
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError:  # still in use by a leaving task
                    time.sleep(0.2)


@pytest.fixture()
def external(
    docker_client: docker.DockerClient, cleaner: Cleaner, stack_name: str
) -> Iterator[External]:
    objects = External(docker_client)
    yield objects
    # In the background, like every test's stack: the stack first, as it uses them.
    cleaner.submit(stack_name, then=objects.remove)


def _repo(
    tmp_path: Path,
    cli: Cli,
    stack: str,
    version: str,
    ext: External,
    port: int | None = FIRST_PORT,
) -> GitOpsRepo:
    repo = GitOpsRepo(tmp_path / "repo", stack)
    repo.write_settings(secrets={"recipients": [IDENTITY.recipient]})
    key = cli.keys / "t" / f"{repo.env}.key"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text(IDENTITY.key_file_text("2024-01-01T00:00:00Z"))
    shape = public_stack(
        version,
        image="127.0.0.1:5000/busybox:1",
        network=str(ext.network.name),
        volume=str(ext.volume.name),
        env=repo.env,
        port=None if port is None else port + VERSIONS.index(version),
    )
    for path, text in shape.files.items():
        repo.write(path, text)
    if shape.secret_path:
        secret = encrypt(DB_PASSWORD.encode(), [IDENTITY.recipient])
        (repo.path / shape.secret_path).parent.mkdir(parents=True, exist_ok=True)
        (repo.path / shape.secret_path).write_bytes(secret)
    repo.write(f"environments/{repo.env}/.env", "DB_USER=app\n")
    return repo


def _spec(client: docker.DockerClient, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = client.api.inspect_service(name)["Spec"]
    return spec


@pytest.mark.parametrize("version", VERSIONS)
def test_a_public_stack_shape_syncs_to_synced_healthy(
    version: str,
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
    external: External,
) -> None:
    repo = _repo(tmp_path, cli, stack_name, version, external)
    head = repo.commit(f"stack of compose version {version}")
    result = cli("sync", "--env", "dev", "--repo", str(repo.path))
    assert result.exit_code == 0, result.output
    status = cli.json("status", "--env", "dev", "--repo", str(repo.path))["statuses"][0]
    assert (status["sync"], status["health"], status["head"]) == ("Synced", "Healthy", head)

    proxy = _spec(docker_client, f"{stack_name}_proxy")
    networks = {n["Target"] for n in proxy["TaskTemplate"]["Networks"]}
    assert external.network.id in networks
    db = _spec(docker_client, f"{stack_name}_db")
    (mount,) = db["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert (mount["Type"], mount["Source"]) == ("volume", external.volume.name)
    assert db["Labels"]["backup"] == "nightly"  # the overlay's deploy label
    env = db["TaskTemplate"]["ContainerSpec"]["Env"]
    assert "POSTGRES_USER=app" in env  # interpolated from .env
    if VERSIONS.index(version) >= VERSIONS.index("3.1"):
        (secret,) = db["TaskTemplate"]["ContainerSpec"]["Secrets"]
        assert secret["SecretName"].startswith(f"{stack_name}_db_password_")
    if VERSIONS.index(version) >= VERSIONS.index("3.3"):
        prometheus = _spec(docker_client, f"{stack_name}_prometheus")
        (config,) = prometheus["TaskTemplate"]["ContainerSpec"]["Configs"]
        assert config["File"]["Name"] == "/etc/prometheus/prometheus.yml"


def _comparable(client: docker.DockerClient, stack: str, name: str) -> dict[str, Any]:
    """A deployed service's spec with what differs by stack name alone made equal:
    the stack prefix, gitswarm's own labels, object IDs and gitswarm's content hashes."""
    spec = _spec(client, f"{stack}_{name}")
    spec["Labels"] = {k: v for k, v in spec["Labels"].items() if not k.startswith("io.gitswarm.")}
    task = spec["TaskTemplate"]
    for attachment in task.get("Networks", []):
        attachment["Target"] = client.api.inspect_network(attachment["Target"])["Name"]
    container = task["ContainerSpec"]
    for kind in ("Configs", "Secrets"):
        for ref in container.get(kind, []):
            ref.pop(f"{kind[:-1]}ID")
            ref[f"{kind[:-1]}Name"] = re.sub(r"_[0-9a-f]{12}$", "", ref[f"{kind[:-1]}Name"])
    text = json.dumps(spec, sort_keys=True).replace(stack, "STACK")
    comparable: dict[str, Any] = json.loads(text)
    comparable["TaskTemplate"].get("Networks", []).sort(key=lambda a: a["Target"])  # by ID
    return comparable


def test_the_raised_version_deploys_what_the_authors_files_deploy(
    swarm: SwarmUnderTest,
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
    external: External,
    cleaner: Cleaner,
) -> None:
    """Issue 12's Traefik case, version 3.3: gitswarm deploys its file as 3.5; the same
    files deployed by the Docker CLI itself (as 3.3) give the same service specs."""
    repo = _repo(tmp_path, cli, stack_name, "3.3", external, port=None)
    repo.commit("compose version 3.3")
    rendered = cli("render", "--env", "dev", "--repo", str(repo.path))
    assert rendered.exit_code == 0 and 'version: "3.5"' in rendered.output, rendered.output
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 0

    theirs = f"cli{uuid.uuid4().hex[:10]}"
    try:
        deploy = subprocess.run(
            [
                "docker", "-H", swarm.docker_host, "stack", "deploy", "--resolve-image",
                "changed", "-c", "base/docker-compose.yml",
                "-c", "environments/dev/docker-compose.yml", theirs,
            ],
            cwd=repo.path,
            env={"PATH": os.environ["PATH"], "DB_USER": "app", "DOCKER_CLI_HINTS": "false"},
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        assert deploy.returncode == 0, deploy.stderr
        for name in ("proxy", "prometheus", "db"):
            ours = _comparable(docker_client, stack_name, name)
            assert ours == _comparable(docker_client, theirs, name), name
    finally:
        cleaner.submit(theirs)
