"""The harness itself: a private swarm, distinct test images, a registry, cleanup."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import docker
import pytest

from harness.engine import PrivateEngine, netns_exists
from harness.images import IMAGES
from tests.conftest import SwarmUnderTest

pytestmark = pytest.mark.swarm


def test_private_engine_is_a_swarm_manager(docker_client: docker.DockerClient) -> None:
    info = docker_client.info()
    assert info["Swarm"]["LocalNodeState"] == "active"
    assert info["Swarm"]["ControlAvailable"] is True


def test_each_image_tag_has_its_own_digest(docker_client: docker.DockerClient) -> None:
    ids = {spec.ref: docker_client.images.get(spec.ref).id for spec in IMAGES}
    assert len(set(ids.values())) == len(IMAGES)


def test_registry_holds_the_images(swarm: SwarmUnderTest, registry: str) -> None:
    assert swarm.lab is not None
    catalog = swarm.lab.registry.get("/v2/_catalog")
    assert catalog is not None and "medianest/app" in catalog and "busybox" in catalog
    tags = swarm.lab.registry.get("/v2/busybox/tags/list")
    assert tags is not None and '"1"' in tags and '"2"' in tags


def test_a_service_from_the_registry_runs_healthy(
    docker_client: docker.DockerClient, stack_name: str, registry: str
) -> None:
    service = docker_client.services.create(
        f"{registry}/busybox:1",
        name=f"{stack_name}_web",
        labels={"com.docker.stack.namespace": stack_name},
        container_labels={"com.docker.stack.namespace": stack_name},
        healthcheck=docker.types.Healthcheck(
            test=["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"],
            interval=1_000_000_000,
            timeout=3_000_000_000,
            retries=3,
        ),
        init=True,
    )
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        tasks = service.tasks()
        state = tasks[0]["Status"]["State"] if tasks else ""
        if state == "running":
            break
        time.sleep(0.2)
    assert state == "running"
    (container,) = docker_client.containers.list(
        filters={"label": f"com.docker.swarm.service.name={stack_name}_web"}
    )
    deadline = time.monotonic() + 30
    while container.attrs["State"]["Health"]["Status"] != "healthy":
        assert time.monotonic() < deadline
        time.sleep(0.5)
        container.reload()


def test_an_engine_stops_without_leaving_anything() -> None:
    name = f"x{uuid.uuid4().hex[:8]}"
    engine = PrivateEngine(name=name, root=Path("/var/tmp/gsh") / name)
    engine.start()
    pid = engine.process.pid if engine.process else 0
    assert netns_exists(engine.netns)
    engine.stop()
    assert not netns_exists(engine.netns)
    assert not engine.root.exists()
    alive = subprocess.run(["kill", "-0", str(pid)], capture_output=True, check=False)
    assert alive.returncode != 0
    leftovers = subprocess.run(
        ["pgrep", "-f", str(engine.root)], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == ""
