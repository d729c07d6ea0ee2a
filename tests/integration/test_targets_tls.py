"""Several targets, one agent (issue 17): the local socket, a TLS-only engine, the 3-node lab.

A second private engine listens on TLS only (``dockerd --tlsverify``, certificates made
here with openssl, harness/tlsengine.py); the agent reaches it with the client
certificate named in the *agent config's* ``targets:``, never in gitswarm.yml. One agent
runs an environment on the session swarm and one on the TLS engine (and, in the
multinode test, one on the 3-node cluster); an environment whose target has the wrong
client certificate, and one whose target does not answer, fail on their own with a
message naming the target and what to check, while the others keep syncing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitswarm.cli.operator import load_operator
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from harness.cluster import Cluster
from harness.engine import PrivateEngine
from harness.gitserve import GitRemote
from harness.images import IMAGES, build
from harness.tlsengine import NetnsForwarder, Pki, make_pki, tls_engine
from tests.conftest import SwarmUnderTest, client_of, remove_stack_objects
from tests.gitops import _dump, service
from tests.integration.agent_rig import wait_for

pytestmark = pytest.mark.swarm


@dataclass
class TlsLab:
    engine: PrivateEngine
    pki: Pki
    good: NetnsForwarder  # the engine, as target `tls`
    other: NetnsForwarder  # the same engine at another address, for the wrong certificate


@pytest.fixture(scope="module")
def tls_lab() -> Iterator[TlsLab]:
    root = Path(f"/var/tmp/gst{os.getpid()}")  # short: unix socket paths are limited
    pki = make_pki(root / "pki")
    engine = tls_engine(f"tls{os.getpid()}", root / "e", pki)
    forwarders: list[NetnsForwarder] = []
    try:
        engine.start()
        engine.swarm_init()
        for spec in IMAGES[:2]:  # busybox:1 and :2, imported (no registry in there)
            build(engine.docker_host, spec)
        forwarders = [NetnsForwarder(engine.netns).start() for _ in range(2)]
        yield TlsLab(engine, pki, *forwarders)
    finally:
        for forwarder in forwarders:
            forwarder.close()
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def _tls(pki: Pki, *, rogue: bool = False) -> dict[str, str]:
    cert, key = (pki.rogue_cert, pki.rogue_key) if rogue else (pki.client_cert, pki.client_key)
    return {"ca": str(pki.ca), "cert": str(cert), "key": str(key)}


def _repo_files(stack: str, targets: Mapping[str, str], version: str) -> dict[str, str]:
    """One application in each environment (env -> target name)."""
    sync = {"prune": True, "health_timeout": 60, "resolve_image": "never"}
    settings = {
        "project": "t",
        "application": {"name": "app", "stack": f"{stack}-{{env}}"},
        "targets": {name: {} for name in set(targets.values()) if name != "local"},
        "environments": {env: {"target": t, "sync": sync} for env, t in targets.items()},
    }
    web = service("127.0.0.1:5000/busybox:1", environment={"VERSION": version})
    files = {
        "gitswarm.yml": _dump(settings),
        "base/docker-compose.yml": _dump({"services": {"web": web}}),
    }
    for env in targets:
        files[f"environments/{env}/docker-compose.yml"] = "services: {}\n"
    return files


@contextlib.contextmanager
def _agent(tmp: Path, remote: GitRemote, agent_yml: str) -> Iterator[tuple[Agent, Store]]:
    path = tmp / "agent.yml"
    path.write_text(agent_yml)
    operator = load_operator(path)  # what `gitswarm serve --config` reads, file checks too
    store = Store(str(tmp / "state.db"))
    source = RepoSource.open(remote.url, cache=tmp / "cache")
    reconciler = Reconciler(
        source, store, SwarmPool(targets=operator.targets), providers=operator.providers
    )
    settings = AgentSettings(poll_interval=300.0, drift_interval=300.0, lease_ttl=5.0)
    agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings)
    agent.start()
    try:
        assert agent.wait_leader(10)
        yield agent, store
    finally:
        agent.stop(timeout=30)
        store.close()


def _status(store: Store, env: str) -> Any:
    return store.get_status("app", env)


def _healthy_at(store: Store, env: str, sha: str) -> bool:
    status = _status(store, env)
    return bool(status and status.revision == sha and (status.sync, status.health) == (
        "Synced", "Healthy"))  # fmt: skip


def _settled_at(store: Store, env: str, sha: str) -> bool:
    """The agent's sync of ``sha`` in ``env`` ended, one way or the other."""
    status = _status(store, env)
    return bool(status and (_healthy_at(store, env, sha) or status.last_result == "Failed"))


def _docker_network_race(store: Store, env: str) -> bool:
    """Every task of the failed sync was rejected by Docker's overlay network setup."""
    status = _status(store, env)
    message = str(getattr(status, "message", "") or "")
    return "network sandbox join failed" in message


def _story(store: Store, envs: Mapping[str, str]) -> str:
    """Each environment's status and operations, for a failure's message."""
    lines = []
    for env in envs:
        lines.append(f"{env}: {_status(store, env)}")
        for o in store.history(app="app", env=env, limit=20):
            lines.append(f"  {o.kind} {(o.revision or '')[:8]} {o.result} {o.reason} {o.message}")
    return "\n".join(lines)


def _failed(store: Store, env: str) -> Any:
    status = _status(store, env)
    return status if status is not None and status.last_result == "Failed" else None


def _running(docker_host: str, stack: str, version: str) -> bool:
    with client_of(docker_host) as client:
        services = client.services.list(filters={"label": f"com.docker.stack.namespace={stack}"})
        if len(services) != 1:
            return False
        env = services[0].attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env", [])
        tasks = services[0].tasks(filters={"desired-state": "running"})
        return f"VERSION={version}" in env and any(t["Status"]["State"] == "running" for t in tasks)


def test_a_tls_target_syncs_and_a_bad_certificate_or_a_dead_target_fails_alone(
    swarm: SwarmUnderTest,
    tls_lab: TlsLab,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)  # target `local`
    pki = tls_lab.pki
    agent_yml = _dump(
        {
            "targets": {
                "local": {},
                "tls": {"url": f"tcp://{tls_lab.good.address}", "tls": _tls(pki),
                        "environments": ["prod"]},
                "tls-rogue": {"url": f"tcp://{tls_lab.other.address}",
                              "tls": _tls(pki, rogue=True), "environments": ["rogue"]},
                "gone": {"url": f"tcp://127.0.0.1:{_closed_port()}", "tls": _tls(pki),
                         "environments": ["gone"]},
            }
        }
    )  # fmt: skip
    envs = {"dev": "local", "prod": "tls", "rogue": "tls-rogue", "gone": "gone"}
    wc = git_remote.clone()
    first = wc.commit("first", files=_repo_files(stack_name, envs, "1"))
    wc.push()
    try:
        with _agent(tmp_path, git_remote, agent_yml) as (_agent_, store):
            wait_for(lambda: _healthy_at(store, "dev", first), 120)
            wait_for(lambda: _healthy_at(store, "prod", first), 120)
            # deployed on the TLS engine itself, over TLS
            assert _running(tls_lab.engine.docker_host, f"{stack_name}-prod", "1")
            assert _running(swarm.docker_host, f"{stack_name}-dev", "1")

            rogue = wait_for_value(lambda: _failed(store, "rogue"), 60)
            assert rogue.reason == "SwarmFailed"
            assert rogue.message.startswith(
                f"target 'tls-rogue' (tcp://{tls_lab.other.address}): the TLS handshake failed ("
            )
            assert (
                "the engine refused the client certificate; check that targets.tls-rogue.tls."
                "cert and .key are a client certificate and its key, signed by the CA the "
                "engine trusts (dockerd --tlsverify --tlscacert), and not expired"
            ) in rogue.message
            gone = wait_for_value(lambda: _failed(store, "gone"), 60)
            assert gone.reason == "SwarmFailed"
            assert "target 'gone' (tcp://127.0.0.1:" in gone.message
            assert "cannot connect (connection refused); check that the engine runs" in (
                gone.message
            )
            assert "Traceback" not in rogue.message + gone.message

            # the others keep syncing while those two keep failing
            second = wc.commit("second", files=_repo_files(stack_name, envs, "2"))
            wc.push()
            _agent_.enqueue(("git",), _agent_request())
            wait_for(lambda: _healthy_at(store, "dev", second), 120)
            wait_for(lambda: _healthy_at(store, "prod", second), 120)
            assert _running(tls_lab.engine.docker_host, f"{stack_name}-prod", "2")
            assert _failed(store, "rogue") is not None and _failed(store, "gone") is not None
        # nothing reached the engine with the wrong certificate
        with client_of(tls_lab.engine.docker_host) as client:
            label = f"com.docker.stack.namespace={stack_name}-rogue"
            assert client.services.list(filters={"label": label}) == []
    finally:
        with client_of(tls_lab.engine.docker_host) as client:
            remove_stack_objects(client, f"{stack_name}-prod")
        with client_of(swarm.docker_host) as client:
            remove_stack_objects(client, f"{stack_name}-dev")


def _agent_request() -> Any:
    from gitswarm.model.agent import TriggerRequest

    return TriggerRequest("webhook", reason="test push")


def wait_for_value(get: Any, timeout: float) -> Any:
    found: list[Any] = []

    def check() -> bool:
        value = get()
        if value is not None:
            found.append(value)
        return value is not None

    wait_for(check, timeout)
    return found[-1]


@pytest.mark.multinode
def test_one_agent_runs_three_environments_on_three_swarms(
    swarm: SwarmUnderTest,
    cluster: Cluster,
    tls_lab: TlsLab,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """development on the session swarm, staging on the 3-node lab (its manager's
    socket), production on the TLS-only engine: one agent, one commit, all Synced."""
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    agent_yml = _dump(
        {
            "targets": {
                "lab": {"url": cluster.manager_host, "environments": ["staging"]},
                "tls": {"url": f"tcp://{tls_lab.good.address}", "tls": _tls(tls_lab.pki),
                        "environments": ["production"]},
            }
        }
    )  # fmt: skip
    envs = {"development": "local", "staging": "lab", "production": "tls"}
    wc = git_remote.clone()
    sha = wc.commit("three swarms", files=_repo_files(stack_name, envs, "1"))
    wc.push()
    try:
        with _agent(tmp_path, git_remote, agent_yml) as (agent, store):
            for env in envs:
                wait_for(lambda env=env: _settled_at(store, env, sha), 180)  # type: ignore[misc]
                if not _healthy_at(store, env, sha) and _docker_network_race(store, env):
                    # Once in CI, on the 3-node lab after the fault tests had restarted
                    # its engines: every task rejected by Docker itself ("network sandbox
                    # join failed ... error creating vxlan interface: file exists"), and
                    # gitswarm said so (Failed, TasksFailing, the task errors). That is
                    # Docker's overlay state, not what this test is about: an operator
                    # syncs again, and that must succeed on the right engine.
                    print(f"{env}: Docker refused the tasks' network; synced again:\n"
                          f"{_story(store, envs)}")  # fmt: skip
                    from gitswarm.reconcile.sync import SyncRequest

                    agent.reconciler.sync(SyncRequest("app", env, force_bad=True, lock_wait=30))
                assert _healthy_at(store, env, sha), f"{env}:\n{_story(store, envs)}"
        assert _running(swarm.docker_host, f"{stack_name}-development", "1")
        assert _running(cluster.manager_host, f"{stack_name}-staging", "1")
        assert _running(tls_lab.engine.docker_host, f"{stack_name}-production", "1")
    finally:
        for host, env in (
            (swarm.docker_host, "development"),
            (cluster.manager_host, "staging"),
            (tls_lab.engine.docker_host, "production"),
        ):
            with client_of(host) as client:
                remove_stack_objects(client, f"{stack_name}-{env}")


def test_a_commit_cannot_move_an_environment_to_another_engine(
    swarm: SwarmUnderTest,
    tls_lab: TlsLab,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whoever can push tries to send development's stack to production's engine (the
    TLS one), production's (and its secrets) to development's socket, and a new
    environment to production's engine: each is refused at the line of ``target:``
    before anything renders, and neither engine gets anything new."""
    from gitswarm.reconcile.sync import SyncRequest

    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    agent_yml = tmp_path / "agent.yml"
    agent_yml.write_text(
        _dump(
            {
                "targets": {
                    "local": {"environments": ["dev"]},
                    "tls": {
                        "url": f"tcp://{tls_lab.good.address}",
                        "tls": _tls(tls_lab.pki),
                        "environments": ["prod"],
                    },
                }
            }
        )
    )
    operator = load_operator(agent_yml)
    wc = git_remote.clone()
    # the attacker's commit: dev on prod's target, prod on dev's, qa on prod's
    envs = {"dev": "tls", "prod": "local", "qa": "tls"}
    sha = wc.commit("move the environments", files=_repo_files(stack_name, envs, "evil"))
    wc.push()
    lines = {
        env: n
        for n, line in enumerate(wc.path.joinpath("gitswarm.yml").read_text().splitlines(), 1)
        for env in envs
        if line.startswith(f"  {env}:")
    }
    store = Store(str(tmp_path / "state.db"))
    pool = SwarmPool(targets=operator.targets)
    source = RepoSource.open(git_remote.url, cache=tmp_path / "cache")
    reconciler = Reconciler(source, store, pool, providers=operator.providers)
    try:
        for env in envs:
            outcome = reconciler.sync(SyncRequest("app", env))
            assert (outcome.result, outcome.reason) == ("Failed", "TargetNotAllowed"), env
            assert outcome.revision in (None, sha)
            (problem,) = outcome.problems
            assert (problem.file, problem.rule) == ("gitswarm.yml", "target-pin")
            assert problem.line is not None and problem.line > lines[env], env
            assert not outcome.retryable  # waits for a new commit
            assert "Traceback" not in outcome.message
        assert "pins it to target 'local'" in reconciler.sync(SyncRequest("app", "dev")).message
        assert "pins it to target 'tls'" in reconciler.sync(SyncRequest("app", "prod")).message
        assert "which takes only prod" in reconciler.sync(SyncRequest("app", "qa")).message
    finally:
        pool.close()
        store.close()
    for host in (swarm.docker_host, tls_lab.engine.docker_host):
        with client_of(host) as client:
            for env in envs:
                label = f"com.docker.stack.namespace={stack_name}-{env}"
                assert client.services.list(filters={"label": label}) == []
                assert client.api.secrets(filters={"label": label}) == []
