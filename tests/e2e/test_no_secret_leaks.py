"""The example's secret value never appears in the store, CLI output, API answers or logs."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from gitswarm.api import create_app, serve_in_thread, settings_from_mapping
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.render.secrets import Identity
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from tests.conftest import SwarmUnderTest
from tests.gitops import Cli
from tests.integration.agent_rig import wait_for

pytestmark = pytest.mark.swarm


def test_the_secret_value_appears_nowhere(
    swarm: SwarmUnderTest,
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    registry: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    assert cli("init", str(repo)).exit_code == 0
    yaml = YAML()
    settings = yaml.load((repo / "gitswarm.yml").read_text())
    settings["application"]["stack"] = stack_name
    # One stack name for every environment on one swarm would let one environment's
    # sync replace another's services: render refuses it. Only development here.
    settings["application"]["environments"] = ["development"]
    with (repo / "gitswarm.yml").open("w") as fh:
        yaml.dump(settings, fh)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qam", "stack name"], check=True)  # fmt: skip
    identity = Identity((tmp_path / "keys/medianest/development.key").read_text())
    secret = identity.decrypt(
        (repo / "environments/development/secrets/jwt_secret.age").read_bytes(), source="t"
    ).decode()
    assert len(secret) > 20

    outputs = []
    for args in (
        ("sync", "--env", "development", "--repo", str(repo)),
        ("sync", "--env", "development", "--repo", str(repo), "--json"),
        ("status", "--env", "development", "--repo", str(repo), "--json"),
        ("diff", "--env", "development", "--repo", str(repo), "--json"),
        ("history", "--env", "development", "--json"),
        ("render", "--env", "development", "--repo", str(repo), "--json"),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)

    store = Store(str(tmp_path / "state.db"))
    source = RepoSource.open(str(repo))
    agent = Agent(source=source, store=store, reconciler=Reconciler(source, store, SwarmPool()),
                  settings=AgentSettings(poll_interval=300, drift_interval=300))  # fmt: skip
    handle = serve_in_thread(
        create_app(agent, settings_from_mapping({"anonymous_read": True})), "127.0.0.1", 0
    )
    agent.start()
    try:
        assert agent.wait_leader(10)
        wait_for(agent.idle, 60)
        for path in ("/api/v1/status", "/api/v1/apps/medianest/envs/development",
                     "/api/v1/apps/medianest/envs/development/diff", "/api/v1/history",
                     "/metrics"):  # fmt: skip
            response = httpx.get(handle.url + path, timeout=30)
            assert response.status_code == 200, (path, response.text)
            outputs.append(response.text)
    finally:
        handle.stop()
        agent.stop(timeout=30)
        store.close()

    outputs.append(caplog.text)
    outputs.append((tmp_path / "state.db").read_bytes().decode(errors="replace"))
    for wal in tmp_path.glob("state.db-*"):
        outputs.append(wal.read_bytes().decode(errors="replace"))
    leaked = [i for i, text in enumerate(outputs) if secret in text]
    assert leaked == [], f"the secret value leaked into outputs {leaked}"
    assert any(f"{stack_name}_jwt_secret_" in text for text in outputs)  # names are shown
