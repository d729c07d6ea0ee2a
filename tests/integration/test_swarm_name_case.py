"""Swarm compares the names of services and configs without case: the fact behind
render's refusal of service names that differ only in case, and its sharing of one
config object between keys that differ only in case (same content, same name but for
case). Seen on the real swarm, and the render of such a stack deploys there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest

from gitswarm.errors import GitswarmError
from gitswarm.model.config import Target
from gitswarm.swarm.client import DockerSwarm
from harness.images import REGISTRY
from tests.conftest import Cleaner, SwarmUnderTest

pytestmark = pytest.mark.swarm


@pytest.fixture()
def engine(swarm: SwarmUnderTest) -> Iterator[DockerSwarm]:
    client = DockerSwarm(Target("test", url=swarm.docker_host))
    try:
        yield client
    finally:
        client.close()


def test_two_services_differing_only_in_case_do_not_deploy(
    engine: DockerSwarm, cleaner: Cleaner, docker_client: docker.DockerClient
) -> None:
    stack = f"tcase{uuid.uuid4().hex[:8]}"
    image = f"{REGISTRY}/busybox:1"
    compose = (
        f"version: '3.8'\nservices:\n  Web:\n    image: {image}\n    deploy: {{replicas: 0}}\n"
        f"  web:\n    image: {image}\n    deploy: {{replicas: 0}}\n"
    )
    try:
        with pytest.raises(GitswarmError, match=r"(?i)name conflicts|already exists"):
            engine.deploy(stack, compose, resolve_image="never")
    finally:
        cleaner.submit(stack)


def test_two_configs_differing_only_in_case_conflict(
    swarm: SwarmUnderTest, docker_client: docker.DockerClient
) -> None:
    name = f"tcase{uuid.uuid4().hex[:8]}_conf_0123456789ab"
    first = docker_client.configs.create(name=name, data=b"x")
    try:
        with pytest.raises(docker.errors.APIError, match=r"(?i)already exists|conflict"):
            docker_client.configs.create(name=name.upper(), data=b"x")
    finally:
        first.remove()
        for config in docker_client.configs.list(filters={"name": name.upper()}):
            config.remove()
