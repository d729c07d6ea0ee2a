"""Image automation against the real registry: a tag pushed there is committed to
development and deployed by the agent; after a rollback, pushing nothing new keeps it
rolled back (a hold, in status and the API); a newer tag moves on again."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from gitswarm.api import create_app, serve_in_thread, settings_from_mapping
from gitswarm.cli.serve import promotion_side
from gitswarm.promote.operator import operator_settings
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.pool import SwarmPool
from harness.gitserve import GitRemote
from harness.system import NETNS_DIR
from tests.conftest import SwarmUnderTest
from tests.gitops import Cli, _dump
from tests.integration.agent_rig import wait_for
from tests.integration.swarm_helpers import image_of

pytestmark = pytest.mark.swarm

TOKEN = "tok-viewer-automation"


@pytest.fixture()
def registry_port(swarm: SwarmUnderTest, registry: str) -> Iterator[int]:
    assert swarm.netns is not None
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("registry_proxy.py")),
         str(NETNS_DIR / swarm.netns), registry.rsplit(":", 1)[1]],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def push_tag(client: docker.DockerClient, registry: str, repo: str, tag: str, source: str) -> None:
    image = client.images.get(f"{registry}/medianest/app:{source}")
    image.tag(f"{registry}/{repo}", tag)
    for line in client.images.push(f"{registry}/{repo}", tag, stream=True, decode=True):
        assert "error" not in line, line
    client.images.remove(f"{registry}/{repo}:{tag}")


def test_image_automation_deploys_a_new_tag_and_a_rollback_wins(
    swarm: SwarmUnderTest,
    docker_client: docker.DockerClient,
    registry: str,
    registry_port: int,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    repo = f"{stack_name}/app"
    push_tag(docker_client, registry, repo, "1.0.0", "1.0.0")
    wc = git_remote.clone()
    settings = {
        "project": "t",
        "application": {"name": "app", "stack": stack_name},
        "targets": {"local": {}},
        "environments": {"dev": {
            "target": "local",
            "sync": {"prune": True, "self_heal": True, "health_timeout": 40},
            "promotion": {"image_automation": [{
                "repository": f"{registry}/{repo}",
                "policy": {"semver": {"range": ">=1.0.0 <2.0.0"}},
                "interval": "1s",
            }]},
        }},
    }  # fmt: skip
    service = {
        "image": f"{registry}/{repo}:${{TAG}}",
        "init": True,
        "stop_grace_period": "1s",
        "healthcheck": {"test": ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"],
                        "interval": "1s", "timeout": "2s", "retries": 3},
    }  # fmt: skip
    wc.commit(
        "dev runs 1.0.0",
        files={
            "gitswarm.yml": _dump(settings),
            "base/docker-compose.yml": _dump({"services": {"web": service}}),
            "environments/dev/docker-compose.yml": "services: {}\n",
            "environments/dev/.env": "# the tag image automation moves\nTAG=1.0.0\n",
        },
    )
    wc.push()

    store = Store(str(cli.state))
    source = RepoSource.open(git_remote.url, cache=tmp_path / "cache")
    reconciler = Reconciler(source, store, SwarmPool())
    agent = Agent(
        source=source, store=store, reconciler=reconciler,
        settings=AgentSettings(poll_interval=2.0, drift_interval=300.0, lease_ttl=5.0),
        metrics=Metrics(),
    )  # fmt: skip
    stop = threading.Event()
    operator = operator_settings(
        {"interval": 1, "registries": {registry: {"endpoint": f"http://127.0.0.1:{registry_port}"}}}
    )
    service_api = promotion_side(reconciler, agent, operator, stop)
    from gitswarm.api import hash_token

    api = settings_from_mapping(
        {"tokens": {hash_token(TOKEN): {"user": "vera", "roles": ["viewer"]}}}, audit=store.audit
    )
    handle = serve_in_thread(create_app(agent, api, Metrics(), service_api), "127.0.0.1", 0)
    agent.start()
    web = f"{stack_name}_web"

    seen: list[str] = []

    def runs(tag: str) -> bool:
        status = store.get_status("app", "dev")
        try:
            image = image_of(docker_client, web)
        except docker.errors.NotFound:
            return False
        seen[:] = [f"{image} {status}"]
        return bool(status and status.health == "Healthy") and f":{tag}@" in image

    try:
        wait_for(lambda: runs("1.0.0"), 90)
        push_tag(docker_client, registry, repo, "1.1.0", "1.1.0")
        wait_for(lambda: runs("1.1.0"), 90)
        wc.git("pull", "-q")
        message = wc.git("log", "-1", "--format=%B")
        assert message.startswith(f"Update app in dev: {registry}/{repo} 1.1.0")
        assert "Promoted-From: registry" in message
        assert f"Promoted-Images: {registry}/{repo}:1.1.0" in message

        result = cli("rollback", "--env", "dev", "--previous", "--repo", git_remote.url,
                     "--reason", "1.1.0 is slow")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert runs("1.0.0")
        wc.git("pull", "-q")
        rolled_back = wc.head()
        wait_for(lambda: store.holds("app", "dev"), 30)
        # Rounds go by; the registry's newest is still the rolled-back 1.1.0.
        stop.wait(6)
        wc.git("pull", "-q")
        assert wc.head() == rolled_back
        assert runs("1.0.0"), (
            seen,
            [(o.kind, o.result, o.reason, o.message) for o in store.history("app", "dev", limit=5)],
        )
        (hold,) = store.holds("app", "dev")
        assert dict(hold.images) == {f"{registry}/{repo}": "1.1.0"}
        status = cli.json("status", "--env", "dev", "--repo", git_remote.url)["statuses"][0]
        assert [h["id"] for h in status["holds"]] == [hold.id]
        answer = httpx.get(
            f"{handle.url}/api/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
        assert [h["id"] for h in answer["statuses"][0]["holds"]] == [hold.id]
        listed = httpx.get(
            f"{handle.url}/api/v1/holds", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()["holds"]
        assert [h["id"] for h in listed] == [hold.id]

        push_tag(docker_client, registry, repo, "1.2.0", "1.2.0")
        wait_for(lambda: runs("1.2.0"), 90)
        assert store.holds("app", "dev") == []
    finally:
        stop.set()
        handle.stop()
        agent.stop(timeout=30)
        store.close()
