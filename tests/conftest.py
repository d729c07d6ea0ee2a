"""Fixtures for the real things: private swarms, a registry and images, Git remotes.

- ``swarm`` (session): the private single-node engine, started on first use and stopped at
  the end; it lives in its own network namespace, so no Docker engine the suite did not
  start is touched. ``GITSWARM_TEST_DOCKER_HOST`` points the suite at an existing swarm
  instead (then only what the tests create there is removed, and tests needing the
  registry or the 3-node cluster are skipped).
- ``cluster`` (session, tests marked ``multinode``): three dockerd nodes in one swarm.
- ``git_remote`` (per test): a bare repository served over git:// and http://.

At the end of the session the suite fails loudly when anything a test created is still
on a swarm (stacks, services, configs, secrets, networks, volumes) or when any process,
network namespace, cgroup or folder the harness started in this run remains
(``harness.system.leftovers``). Runs killed earlier are cleaned up at the start.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from harness import agentimage, system
from harness import cluster as clustermod
from harness import lab as labmod
from harness.gitserve import GitRemote, GitServer
from harness.images import IMAGES, REGISTRY, build
from tests.gitops import Cli
from tests.properties import load_profile
from tests.xdist_groups import LoadGroupIds

load_profile()  # Hypothesis: ``ci`` unless HYPOTHESIS_PROFILE says (tests/properties.py)

EXTERNAL_ENV = "GITSWARM_TEST_DOCKER_HOST"
LEFTOVER_OBJECTS = pytest.StashKey[list[str]]()


@dataclass
class SwarmUnderTest:
    docker_host: str
    netns: str | None  # the network namespace of the private engine, None if external
    registry: bool
    lab: labmod.Lab | None = None

    def client(self) -> docker.DockerClient:
        return socket_client(self.docker_host)


def socket_client(docker_host: str) -> docker.DockerClient:
    """A docker-py client that does not read proxy settings from os.environ on each
    request: the stack cleaner's threads would race pytest setting PYTEST_CURRENT_TEST
    and monkeypatch.setenv (KeyError while iterating os.environ).

    Not even its first request: ``DockerClient(version="auto")`` asks the engine for its
    API version in the constructor, before ``trust_env`` can be turned off (a cleaner
    thread failed so and left a test's network and volume behind). The version is read
    through a client pinned to the oldest API, with the environment already ignored."""
    probe = docker.APIClient(
        base_url=docker_host, version=docker.constants.MINIMUM_DOCKER_API_VERSION, timeout=60
    )
    probe.trust_env = False
    try:
        version = str(probe.version(api_version=False)["ApiVersion"])
    finally:
        probe.close()
    client = docker.DockerClient(base_url=docker_host, version=version, timeout=60)
    client.api.trust_env = False
    return client


@contextlib.contextmanager
def client_of(docker_host: str) -> Iterator[docker.DockerClient]:
    client = socket_client(docker_host)
    try:
        yield client
    finally:
        client.close()


# --- leftovers -------------------------------------------------------------------------


def swarm_objects(client: docker.DockerClient) -> set[str]:
    """Every stack, service, config, secret, network and volume on a swarm, as text."""
    found: set[str] = set()
    for service in client.services.list():
        found.add(f"service {service.name} ({service.id[:12]})")
        stack = service.attrs["Spec"].get("Labels", {}).get("com.docker.stack.namespace")
        if stack:
            found.add(f"stack {stack}")
    found |= {f"config {c.name} ({c.id[:12]})" for c in client.configs.list()}
    found |= {f"secret {s.name} ({s.id[:12]})" for s in client.secrets.list()}
    # bridge/host/none are each engine's own: a restarted node may make them anew (new id).
    found |= {
        f"network {n.name} ({n.id[:12]})"
        for n in client.networks.list()
        if n.name not in ("bridge", "host", "none")
    }
    found |= {f"volume {v.name}" for v in client.volumes.list()}
    return found


def _note_leftovers(config: pytest.Config, where: str, found: set[str]) -> None:
    config.stash.setdefault(LEFTOVER_OBJECTS, []).extend(f"{where}: {x}" for x in sorted(found))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(LoadGroupIds(), "gitswarm-xdist-groups")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    for name in system.reap_stale():
        sys.stderr.write(f"harness: removed {name} left by a run that died\n")
    # A test that forgets --state must not read or write the user's own store (a store of
    # another gitswarm version there broke tests), nor read the user's age keys: the
    # defaults point into a folder of this run, removed at the end.
    home = Path(tempfile.mkdtemp(prefix="gitswarm-test-home-"))
    session.config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
    os.environ["XDG_DATA_HOME"] = str(home / "data")
    os.environ.setdefault("GITSWARM_KEYS_DIR", str(home / "keys"))
    os.environ.pop("GITSWARM_STATE", None)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Run in parallel (pytest-xdist, ``--dist loadgroup``), every worker starts the labs its
    # tests need: the 3-node cluster is the dearest, so all its tests go to one worker.
    # The marks must be there before xdist's worker hook (registered after this conftest,
    # so called before it) reads them; tests/xdist_groups.py makes them count on pytest 9.
    for item in items:
        if "multinode" in item.keywords:
            item.add_marker(pytest.mark.xdist_group("cluster"))
    if os.environ.get(agentimage.PREBUILT_ENV):
        items[:] = _image_tests_late(items)
    if os.environ.get(EXTERNAL_ENV):
        skip = pytest.mark.skip(reason=f"needs private 3-node swarms; not with {EXTERNAL_ENV}")
        for item in items:
            if "multinode" in item.keywords:
                item.add_marker(skip)


def _image_tests_late(items: list[pytest.Item]) -> list[pytest.Item]:
    """The tests of the agent image after the other real-swarm tests, before the unit
    tests: scripts/test builds the image from the start of the run (minutes when
    requirements.lock changed), and a worker that started its test early would only
    wait for that build; the unit tests after it keep the other workers busy meanwhile."""
    image = [i for i in items if "image" in i.keywords]
    rest = [i for i in items if "image" not in i.keywords]
    unit = next((n for n, i in enumerate(rest) if "tests/unit/" in i.nodeid), len(rest))
    return rest[:unit] + image + rest[unit:]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """In parallel runs, what a worker left behind (its ``pytest_sessionfinish`` found it)."""
    output = getattr(node, "workeroutput", {})
    config: pytest.Config = node.config  # type: ignore[attr-defined]
    config.stash.setdefault(LEFTOVER_OBJECTS, []).extend(output.get("leftovers", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test or the harness left anything behind.

    A pytest-xdist worker cleans up and hands its findings to the controller (through
    ``workeroutput``), which fails the run: a worker's own exit status is not the run's.
    """
    owner = os.getpid()
    found = list(session.config.stash.get(LEFTOVER_OBJECTS, []))
    found += [f"harness: {x}" for x in system.leftovers(owner)]
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["leftovers"] = found
        if found:
            system.clean(owner)
        else:
            system.forget(owner)
        return
    if not found:
        system.forget(owner)
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    title = "LEFTOVERS: this run did not clean up after itself"
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("!", title, red=True, bold=True)
        for item in found:
            reporter.write_line(f"  {item}", red=True)
    else:
        sys.stderr.write(title + "\n" + "".join(f"  {x}\n" for x in found))
    system.clean(owner)  # leave the machine clean all the same
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- the single-node swarm -------------------------------------------------------------


@pytest.fixture(scope="session")
def swarm(request: pytest.FixtureRequest) -> Iterator[SwarmUnderTest]:
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        for spec in IMAGES:
            build(external, spec)
        under_test = SwarmUnderTest(docker_host=external, netns=None, registry=False)
        with client_of(under_test.docker_host) as client:
            before = swarm_objects(client)
        yield under_test
        with client_of(under_test.docker_host) as client:
            _note_leftovers(request.config, external, swarm_objects(client) - before)
        return
    lab = labmod.up(f"t{os.getpid()}")
    try:
        under_test = SwarmUnderTest(
            docker_host=lab.docker_host, netns=lab.engine.netns, registry=True, lab=lab
        )
        with client_of(under_test.docker_host) as client:
            before = swarm_objects(client)
        yield under_test
        with client_of(under_test.docker_host) as client:
            _note_leftovers(request.config, "session swarm", swarm_objects(client) - before)
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
def cli(swarm: SwarmUnderTest, tmp_path: Path) -> Cli:
    """The gitswarm CLI against the test swarm, with this test's own state and keys."""
    return Cli(swarm.docker_host, tmp_path / "state.db", tmp_path / "keys")


@pytest.fixture()
def registry(swarm: SwarmUnderTest) -> str:
    if not swarm.registry:
        pytest.skip(f"needs the private registry (not available with {EXTERNAL_ENV})")
    return REGISTRY


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())[:12] or "t"


def remove_stack_objects(client: docker.DockerClient, namespace: str) -> None:
    """Remove every service, config, secret, network and volume of a stack namespace."""
    label = f"com.docker.stack.namespace={namespace}"
    for service in client.services.list(filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):  # another cleaner was quicker
            service.remove()
    # Tasks must be gone before configs/secrets/networks can be removed.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = client.api.tasks(filters={"label": label})
        running = [t for t in tasks if t["Status"]["State"] not in ("shutdown", "complete")]
        # The low-level list: containers.list() inspects each one and races their removal.
        if not client.api.containers(all=True, filters={"label": label}) and not running:
            break
        time.sleep(0.2)
    for kind in (client.configs, client.secrets, client.networks, client.volumes):
        for obj in kind.list(filters={"label": label}):
            for _ in range(50):
                try:
                    obj.remove()
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError:
                    time.sleep(0.2)


class Cleaner:
    """Removes finished tests' stacks in the background (stopping containers takes
    seconds the next test need not wait for); ``wait()`` at the session's end, before
    the swarm goes away and before the leftovers check."""

    def __init__(self, swarm: SwarmUnderTest) -> None:
        self.swarm = swarm
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stack-cleaner")
        self.futures: list[Future[None]] = []
        # A client per worker thread: a requests session is not meant to be shared.
        self._local = threading.local()
        self._clients: list[docker.DockerClient] = []
        self._lock = threading.Lock()

    def _client(self) -> docker.DockerClient:
        client: docker.DockerClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.swarm.client()
            # requests reads proxy settings from os.environ on every request; pytest
            # changes PYTEST_CURRENT_TEST meanwhile on the main thread, and iterating
            # os.environ then fails (KeyError). A unix socket needs no proxy.
            client.api.trust_env = False
            with self._lock:
                self._clients.append(client)
        return client

    def submit(
        self, namespace: str, then: Callable[[docker.DockerClient], None] | None = None
    ) -> None:
        """Remove a stack namespace; then (if given) call ``then`` with the same client,
        e.g. to remove an external network the stack used."""

        def work() -> None:
            client = self._client()
            remove_stack_objects(client, namespace)
            if then is not None:
                then(client)

        self.futures.append(self.pool.submit(work))

    def wait(self) -> None:
        try:
            for future in self.futures:
                future.result(timeout=120)
        finally:
            self.pool.shutdown(wait=True)
            for client in self._clients:
                client.close()


@pytest.fixture(scope="session")
def cleaner(swarm: SwarmUnderTest, docker_client: docker.DockerClient) -> Iterator[Cleaner]:
    worker = Cleaner(swarm)
    try:
        yield worker
    finally:
        worker.wait()


@pytest.fixture()
def stack_name(request: pytest.FixtureRequest, cleaner: Cleaner) -> Iterator[str]:
    """A unique stack name for one test; everything in that namespace is removed after
    (in the background; the session waits for it before its leftovers check)."""
    name = f"t{_slug(request.node.name)}{uuid.uuid4().hex[:6]}"
    yield name
    cleaner.submit(name)


# --- the 3-node swarm ------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[clustermod.Cluster]:
    """Three dockerd nodes in one swarm (node 1 manages); torn down at the session's end.

    Tests that stop a node must start it again (``cluster.start_node(i)``) before they end.
    """
    if os.environ.get(EXTERNAL_ENV):
        pytest.skip(f"the 3-node cluster is private; not available with {EXTERNAL_ENV}")
    cl = clustermod.up(f"c{os.getpid()}")
    try:
        with client_of(cl.manager_host) as client:
            before = swarm_objects(client)
            yield cl
            for i in cl.indexes:
                cl.start_node(i)  # a test that forgot: bring it back to see what it left
            _note_leftovers(request.config, "cluster", swarm_objects(client) - before)
    finally:
        cl.down()


@pytest.fixture()
def cluster_client(cluster: clustermod.Cluster) -> Iterator[docker.DockerClient]:
    """A Docker client of the cluster's manager."""
    with client_of(cluster.manager_host) as client:
        yield client


@pytest.fixture()
def cluster_stack_name(
    request: pytest.FixtureRequest, cluster_client: docker.DockerClient
) -> Iterator[str]:
    """A unique stack name on the cluster; everything in that namespace is removed after."""
    name = f"t{_slug(request.node.name)}{uuid.uuid4().hex[:6]}"
    yield name
    remove_stack_objects(cluster_client, name)


# --- Git -------------------------------------------------------------------------------


@pytest.fixture()
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    """git daemon + smart HTTP on loopback for repositories under ``tmp_path/git``."""
    server = GitServer(tmp_path / "git").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def git_remote(git_server: GitServer, request: pytest.FixtureRequest) -> GitRemote:
    """An empty bare repository (branch ``main``) served over git:// and http://.

    ``.url`` (HTTP), ``.git_url``, ``.file_url``, ``.clone()`` → a working copy to
    ``commit(..., author=, date=)`` and ``push()``; ``.stop()``/``.start()`` the server.
    """
    return git_server.remote(_slug(request.node.name))


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
