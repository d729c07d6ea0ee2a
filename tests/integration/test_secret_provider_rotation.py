"""An exec-provider secret rotates on a real swarm (issue 17), and no old version stays.

The agent config defines provider ``vault`` (here a script printing a value kept in a
file the test changes, as ``vault kv get -field=...`` prints Vault's); the compose file
references it with ``x-gitswarm-provider``. When the provider starts to return a new
value, the agent's next round deploys a new secret version (its name a keyed hash of the
value), the service's tasks are replaced and use it, and the old version is removed as
soon as no task uses it -- with no commit. The running task reads the new value from
its secret file; no value reaches the store, the logs, the HTTP API or /metrics.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitswarm.api import create_app, serve_in_thread, settings_from_mapping
from gitswarm.cli.operator import load_operator
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler
from gitswarm.render.secrets import Identity
from gitswarm.source.keys import write_identity
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from harness.gitserve import GitRemote
from tests.conftest import SwarmUnderTest, client_of
from tests.gitops import _dump, service
from tests.integration.agent_rig import wait_for

pytestmark = pytest.mark.swarm

FIRST, SECOND = b"db-pass-ONE-3b9f1e", b"db-pass-TWO-77c0aa"
PROVIDER = """\
import pathlib, sys
key = sys.argv[1]
sys.stdout.write(pathlib.Path({values!r}, key.replace("/", "_")).read_text())
"""


@pytest.fixture()
def provider_env(
    swarm: SwarmUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    keys = tmp_path / "keys"
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(keys))
    write_identity(keys / "t" / "dev.key", Identity.generate())  # names the versions
    values = tmp_path / "values"
    values.mkdir()
    yield values


def _secrets(docker_host: str, stack: str) -> list[Any]:
    with client_of(docker_host) as client:
        found = client.api.secrets(filters={"label": f"com.docker.stack.namespace={stack}"})
    return sorted(found, key=lambda s: s["CreatedAt"])


def _uses(docker_host: str, stack: str) -> tuple[set[str], set[str]]:
    """The secret names the service names, and those its running tasks mount."""
    with client_of(docker_host) as client:
        (svc,) = client.api.services(filters={"label": f"com.docker.stack.namespace={stack}"})
        named = {s["SecretName"] for s in svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]}
        tasks = client.api.tasks(filters={"service": svc["ID"], "desired-state": "running"})
        mounted = {
            s["SecretName"]
            for t in tasks
            if t["Status"]["State"] == "running"
            for s in t["Spec"]["ContainerSpec"].get("Secrets", [])
        }
    return named, mounted


def _value_in_task(docker_host: str, stack: str) -> bytes:
    """What the running task of the stack's service reads at /run/secrets/db: the
    container of the task meant to run (after a rotation the old task's container may
    still be stopping, and still listed as running)."""
    with client_of(docker_host) as client:
        (svc,) = client.api.services(filters={"label": f"com.docker.stack.namespace={stack}"})
        tasks = client.api.tasks(filters={"service": svc["ID"], "desired-state": "running"})
        (task,) = [t for t in tasks if t["Status"]["State"] == "running"]
        container = client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
        code, out = container.exec_run(["cat", "/run/secrets/db"])
    assert code == 0, out
    return bytes(out)


def _api_text(url: str) -> str:
    """Everything the API and /metrics say about the app, as one text."""
    paths = [
        "/api/v1/status",
        "/api/v1/history?limit=50",
        "/api/v1/apps/app/envs/dev",
        "/api/v1/apps/app/envs/dev/diff",
        "/metrics",
    ]
    texts = []
    for path in paths:
        response = httpx.get(f"{url}{path}", timeout=60)
        assert response.status_code == 200, (path, response.text)
        texts.append(response.text)
    return "\n".join(texts)


def test_a_new_provider_value_rolls_out_and_the_old_version_is_removed(
    swarm: SwarmUnderTest,
    provider_env: Path,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    values = provider_env
    (values / "shop_db").write_bytes(FIRST)
    script = tmp_path / "fake-vault.py"
    script.write_text(PROVIDER.format(values=str(values)))
    agent_yml = tmp_path / "agent.yml"
    agent_yml.write_text(
        _dump(
            {
                "providers": {
                    "vault": {
                        "argv": [sys.executable, str(script), "{key}"],
                        "environments": ["dev"],
                        "timeout": 10,
                    }
                }
            }
        )
    )
    web = service(secrets=["db"])
    compose = {
        "services": {"web": web},
        "secrets": {"db": {"x-gitswarm-provider": {"name": "vault", "key": "shop/db"}}},
    }
    settings = {
        "project": "t",
        "application": {"name": "app", "stack": stack_name},
        "environments": {"dev": {"sync": {"prune": True, "health_timeout": 60}}},
    }
    wc = git_remote.clone()
    sha = wc.commit(
        "provider secret",
        files={
            "gitswarm.yml": _dump(settings),
            "base/docker-compose.yml": _dump(compose),
            "environments/dev/docker-compose.yml": "services: {}\n",
        },
    )
    wc.push()

    operator = load_operator(agent_yml)
    store = Store(str(tmp_path / "state.db"))
    source = RepoSource.open(git_remote.url, cache=tmp_path / "cache")
    reconciler = Reconciler(
        source, store, SwarmPool(targets=operator.targets), providers=operator.providers
    )
    metrics = Metrics()
    agent = Agent(
        source=source,
        store=store,
        reconciler=reconciler,
        settings=AgentSettings(poll_interval=300.0, drift_interval=2.0, lease_ttl=5.0),
        metrics=metrics,
    )
    api = settings_from_mapping({"anonymous_read": True}, audit=store.audit)
    server = serve_in_thread(create_app(agent, api, metrics), "127.0.0.1", 0)
    agent.start()
    said = []
    try:
        assert agent.wait_leader(10)

        def healthy() -> bool:
            status = store.get_status("app", "dev")
            return bool(status and status.revision == sha and status.health == "Healthy")

        wait_for(healthy, 120)
        (first,) = _secrets(swarm.docker_host, stack_name)
        first_name = first["Spec"]["Name"]
        assert first["Spec"]["Labels"]["io.gitswarm.provider"] == "vault"
        wait_for(lambda: _uses(swarm.docker_host, stack_name) == ({first_name}, {first_name}), 60)
        assert _value_in_task(swarm.docker_host, stack_name) == FIRST  # what is deployed
        said.append(_api_text(server.url))

        (values / "shop_db").write_bytes(SECOND)  # rotated in the provider, not in Git

        def rotated() -> bool:
            names = [s["Spec"]["Name"] for s in _secrets(swarm.docker_host, stack_name)]
            if len(names) != 1 or names == [first_name]:
                return False  # the new one not there yet, or the old one not removed yet
            return _uses(swarm.docker_host, stack_name) == ({names[0]}, {names[0]})

        wait_for(rotated, 120, interval=0.5)
        (second,) = _secrets(swarm.docker_host, stack_name)
        assert second["Spec"]["Name"].startswith(f"{stack_name}_db_")

        def refreshed() -> bool:
            """The refresh's sync recorded as done: its garbage collection (which
            removed the old version, seen above) runs before its end is written."""
            return any(
                o.kind == "sync"
                and "provider secrets refresh" in (o.message or "")
                and o.result == "Succeeded"
                and o.changes
                for o in store.history(app="app", env="dev", limit=50)
            )

        wait_for(refreshed, 30)
        status = store.get_status("app", "dev")
        assert status is not None and (status.sync, status.health) == ("Synced", "Healthy")
        assert _value_in_task(swarm.docker_host, stack_name) == SECOND
        said.append(_api_text(server.url))
    finally:
        server.stop()
        agent.stop(timeout=30)
        store.close()
    raw = (tmp_path / "state.db").read_bytes()
    assert FIRST not in raw and SECOND not in raw  # no value in the store
    for value in (FIRST.decode(), SECOND.decode()):
        assert value not in caplog.text  # nor in any log record
        assert all(value not in text for text in said)  # nor in the API or /metrics
    assert any("provider secrets refresh" in text for text in said)  # the API did answer
