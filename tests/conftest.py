"""Fixtures for the real things: a private swarm, its registry and images, unique names.

The session's private engine is started on first use and stopped at the end; it lives
in its own network namespace, so no Docker engine the suite did not start is touched.
``GITSWARM_TEST_DOCKER_HOST`` points the suite at an existing swarm instead (then only
what the tests create there is removed, and tests needing the registry are skipped).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest

from harness import lab as labmod
from harness.images import IMAGES, REGISTRY, build


@dataclass
class SwarmUnderTest:
    docker_host: str
    netns: str | None  # the network namespace of the private engine, None if external
    registry: bool
    lab: labmod.Lab | None = None

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=60)


@pytest.fixture(scope="session")
def swarm() -> Iterator[SwarmUnderTest]:
    external = os.environ.get("GITSWARM_TEST_DOCKER_HOST")
    if external:
        for spec in IMAGES:
            build(external, spec)
        yield SwarmUnderTest(docker_host=external, netns=None, registry=False)
        return
    lab = labmod.up(f"t{os.getpid()}")
    try:
        yield SwarmUnderTest(
            docker_host=lab.docker_host, netns=lab.engine.netns, registry=True, lab=lab
        )
    finally:
        lab.down()


@pytest.fixture(scope="session")
def docker_client(swarm: SwarmUnderTest) -> Iterator[docker.DockerClient]:
    client = swarm.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture()
def registry(swarm: SwarmUnderTest) -> str:
    if not swarm.registry:
        pytest.skip("needs the private registry (not available with GITSWARM_TEST_DOCKER_HOST)")
    return REGISTRY


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())[:12] or "t"


def remove_stack_objects(client: docker.DockerClient, namespace: str) -> None:
    """Remove every service, config, secret and network of a stack namespace."""
    label = f"com.docker.stack.namespace={namespace}"
    for service in client.services.list(filters={"label": label}):
        service.remove()
    # Tasks must be gone before configs/secrets/networks can be removed.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = client.api.tasks(filters={"label": label})
        running = [t for t in tasks if t["Status"]["State"] not in ("shutdown", "complete")]
        if not client.api.containers(all=True, filters={"label": label}) and not running:
            break
        time.sleep(0.2)
    for kind in (client.configs, client.secrets, client.networks):
        for obj in kind.list(filters={"label": label}):
            for _ in range(50):
                try:
                    obj.remove()
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError:
                    time.sleep(0.2)


@pytest.fixture()
def stack_name(request: pytest.FixtureRequest, docker_client: docker.DockerClient) -> Iterator[str]:
    """A unique stack name for one test; everything in that namespace is removed after."""
    name = f"t{_slug(request.node.name)}{uuid.uuid4().hex[:6]}"
    yield name
    remove_stack_objects(docker_client, name)


# --- the state store, on SQLite and on a private PostgreSQL (harness/postgres.py) -------

from gitswarm.store import Store  # noqa: E402
from harness.postgres import PostgresHarnessError, PrivatePostgres  # noqa: E402
from harness.postgres import start as start_postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster for the session. Missing server binaries fail the
    test with what to install: a PostgreSQL test never skips silently."""
    try:
        server = start_postgres()
    except PostgresHarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PrivatePostgres) -> str:
    """URL of the empty database ``gitswarm`` on the private cluster (mark tests postgres)."""
    return postgres_server.create_database("gitswarm")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh, empty state store location: a SQLite file in a temp dir, or a schema of
    its own in the private PostgreSQL's ``gitswarm`` database. Tests using it run on both."""
    if request.param == "sqlite":
        yield os.path.join(tmp_path, "state.db")
        return
    request.getfixturevalue("postgres_url")  # the database the schemas live in
    server: PrivatePostgres = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield server.create_schema(name, "gitswarm")
    server.drop_schema(name, "gitswarm")


@pytest.fixture()
def store(store_url: str) -> Iterator[Store]:
    """An open ``Store`` on ``store_url``, closed after the test."""
    with Store(store_url) as opened:
        yield opened
