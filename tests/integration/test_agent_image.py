"""gitswarm as a Swarm service: the agent image (scripts/build-image) and
deploy/gitswarm-stack.yml on the real test swarm, managing the example repository and
its own stack from Git.

The agent's stack is an application of the GitOps repository (the shipped stack file,
verbatim, with a development overlay for this swarm), deployed once by the CLI as an
operator would bootstrap it; from then on the agent in the container syncs everything,
including a commit that upgrades its own image: start-first, the new agent takes over
the lease and keeps the history in the store on the volume.

The agent reaches Git through a git daemon inside the test engine's network namespace,
at the docker_gwbridge gateway (the namespace has no route out).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from ruamel.yaml import YAML

from harness import agentimage
from harness.gitserve import GitRemote, GitServer
from harness.images import REGISTRY
from tests.conftest import Cleaner, SwarmUnderTest, remove_stack_objects
from tests.gitops import Cli

pytestmark = [pytest.mark.swarm, pytest.mark.registry, pytest.mark.image]

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = f"{REGISTRY}/gitswarm"
EXTERNAL_SECRETS = {
    "gitswarm_git_credentials": b"https://gitswarm:not-a-real-token@git.example.invalid\n",
    "gitswarm_webhook_github": uuid.uuid4().hex.encode(),
}
NODE_LABEL = "gitswarm.agent"

# The agent's config in this test: quick polls and a short lease, only development.
AGENT_CONFIG = """\
poll_interval: 2
lease_ttl: 6
environments: [development]
identities:
  development: /run/secrets/age-development.key
api:
  anonymous_read: true
  webhooks:
    github: {file: /run/secrets/webhook-github}
"""

# Merged over the shipped stack file: the development identity and this test's config.
AGENT_OVERLAY = """\
version: "3.8"
services:
  agent:
    secrets:
      - {source: age_development, target: age-development.key, uid: "10001", mode: 0400}
configs:
  agent_config:
    file: ../environments/development/gitswarm-agent.yml
secrets:
  age_development:
    external: true
    name: gitswarm_age_development
"""

# The agent service holds docker.sock by design: exempt it, by name and with a reason.
EXEMPTION = {"agent": "gitswarm itself: it deploys through the Docker API"}


@pytest.fixture(scope="session")
def agent_image(swarm: SwarmUnderTest) -> agentimage.BuiltImage:
    if swarm.lab is None:
        pytest.skip("builds and imports into the private test engine only")
    built = agentimage.build(swarm.docker_host, f"{IMAGE}:1")
    print(f"agent image {built.ref} built and imported in {built.seconds:.0f}s")
    return built


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Ops", "-c", "user.email=ops@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def _wait(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    every: float = 1.0,
    diagnose: Callable[[], str] = lambda: "",
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (docker.errors.APIError, OSError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})\n{diagnose()}")


class AgentService:
    """The agent service on the swarm, read through its own containers."""

    def __init__(self, client: docker.DockerClient, service: str) -> None:
        self.client, self.service = client, service

    def containers(self) -> list[Any]:
        found = self.client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={self.service}"}
        )
        return sorted(found, key=lambda c: c.attrs["Created"])

    def api(self, path: str, container: Any | None = None) -> dict[str, Any]:
        """GET an API path inside the (newest running) agent container."""
        target = container or self.containers()[-1]
        probe = (
            "import json, sys, urllib.request, urllib.error\n"
            "try:\n"
            f"    r = urllib.request.urlopen('http://127.0.0.1:8080{path}', timeout=5)\n"
            "    print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.read().decode())\n"
        )
        code, out = target.exec_run(["python", "-c", probe], user="10001")
        if code != 0:
            raise ValueError(out.decode(errors="replace"))
        data: dict[str, Any] = json.loads(out)
        return data

    def diagnosis(self) -> str:
        """The service's tasks and the agent's last log lines, for a failing wait."""
        tasks = self.client.api.tasks(filters={"service": self.service})
        lines = [
            f"task {t['ID'][:12]} {t['Status']['State']} (desired {t['DesiredState']}): "
            f"{t['Status'].get('Err') or t['Status'].get('Message')}"
            for t in tasks
        ]
        with contextlib.suppress(docker.errors.APIError):
            logs = self.client.api.service_logs(
                self.service, stdout=True, stderr=True, tail=60, timestamps=False
            )
            lines += [chunk.decode(errors="replace").rstrip() for chunk in logs]
        return "\n".join(lines)

    def status(self, app: str, container: Any | None = None) -> dict[str, Any]:
        status: dict[str, Any] = self.api(f"/api/v1/apps/{app}/envs/development", container)[
            "status"
        ]
        return status


@pytest.fixture()
def agent_setup(
    swarm: SwarmUnderTest,
    docker_client: docker.DockerClient,
    cleaner: Cleaner,
    git_server: GitServer,
    git_remote: GitRemote,
    cli: Cli,
    tmp_path: Path,
    agent_image: agentimage.BuiltImage,
) -> Iterator[dict[str, Any]]:
    """The example repository with the agent's own stack as application `gitswarm`,
    pushed to a remote the agent's containers can reach; the node labelled and the
    external secrets created. Everything is removed afterwards, the agent first (it
    would heal the example's services back)."""
    suffix = uuid.uuid4().hex[:6]
    app_stack, agent_stack = f"timgapp{suffix}", f"timgagent{suffix}"
    assert swarm.netns is not None
    node = docker_client.nodes.list()[0]
    secrets = dict(EXTERNAL_SECRETS)
    daemon = git_server.daemon_in_netns(swarm.netns, agentimage.gateway(swarm.docker_host))
    try:
        repo = tmp_path / "gitops"
        assert cli("init", str(repo)).exit_code == 0
        for env in ("production", "development"):
            secrets[f"gitswarm_age_{env}"] = (cli.keys / f"medianest/{env}.key").read_bytes()
        yaml = YAML()
        settings = yaml.load((repo / "gitswarm.yml").read_text())
        settings["application"]["stack"] = app_stack
        settings["application"]["environments"] = ["development"]
        settings["environments"]["development"]["policies"]["no_privileged_containers"] = {
            "mode": "enforce",
            "exempt": EXEMPTION,
        }
        with (repo / "gitswarm.yml").open("w") as fh:
            yaml.dump(settings, fh)
        (repo / "applications").mkdir()
        (repo / "applications/gitswarm.yml").write_text(
            f"stack: {agent_stack}\n"
            'files: [gitswarm/gitswarm-stack.yml, "environments/{env}/gitswarm.yml"]\n'
            "environments: [development]\n"
        )
        (repo / "gitswarm").mkdir()
        for name in ("gitswarm-stack.yml", "gitswarm-agent.yml"):
            shutil.copy(REPO_ROOT / "deploy" / name, repo / "gitswarm" / name)
        dev = repo / "environments/development"
        (dev / "gitswarm.yml").write_text(AGENT_OVERLAY)
        (dev / "gitswarm-agent.yml").write_text(AGENT_CONFIG)
        sock = swarm.docker_host.removeprefix("unix://")
        with (dev / ".env").open("a") as fh:
            fh.write(
                f"GITSWARM_IMAGE={IMAGE}:1\n"
                f"GITSWARM_REPO={daemon.url(git_remote)}\n"
                f"DOCKER_SOCKET={sock}\n"
                f"DOCKER_GID={os.stat(sock).st_gid}\n"
                "GITSWARM_PORT=28080\n"
            )
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", "gitswarm manages its own stack")
        _git(repo, "remote", "add", "origin", git_remote.file_url)
        _git(repo, "push", "-q", "origin", "main")
        node.update({**node.attrs["Spec"], "Labels": {NODE_LABEL: "true"}})
        for name, data in secrets.items():
            docker_client.secrets.create(name=name, data=data)
        yield {
            "repo": repo,
            "app_stack": app_stack,
            "agent_stack": agent_stack,
            "agent": AgentService(docker_client, f"{agent_stack}_agent"),
        }
    finally:
        _stop_agent(docker_client, agent_stack)

        def after_agent(client: docker.DockerClient) -> None:
            remove_stack_objects(client, app_stack)
            for name in secrets:
                for found in client.secrets.list(filters={"name": name}):
                    with contextlib.suppress(docker.errors.NotFound):
                        found.remove()
            fresh = client.nodes.get(node.id)
            labels = dict(fresh.attrs["Spec"].get("Labels") or {})
            labels.pop(NODE_LABEL, None)
            fresh.update({**fresh.attrs["Spec"], "Labels": labels})

        cleaner.submit(agent_stack, then=after_agent)
        daemon.stop()


def _stop_agent(client: docker.DockerClient, namespace: str, timeout: float = 180) -> None:
    """Remove the agent's service until it stays removed: an agent that manages its own
    stack (self_heal) and sees its service go in the moment before its SIGTERM heals it
    back, as it would any removed service of an application."""
    label = f"com.docker.stack.namespace={namespace}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services = client.api.services(filters={"label": label})
        containers = client.api.containers(all=True, filters={"label": label})
        if not services and not containers:
            return
        for found in services:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_service(found["ID"])
        time.sleep(0.5)
    raise AssertionError(f"the agent's service {namespace} kept coming back")


# An agent container stops by itself this soon after Swarm's SIGTERM (the stack's
# stop_grace_period, 60 s, is only the bound before SIGKILL).
STOPS_WITHIN = 15.0


def _stops(client: docker.DockerClient, namespace: str, since: float) -> dict[str, Any]:
    """The containers of stack ``namespace`` that died since ``since`` (epoch seconds),
    from the engine's events: when each got SIGTERM, when it died, its exit code."""
    found: dict[str, dict[str, Any]] = {}
    events = client.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "label": f"com.docker.stack.namespace={namespace}"},
    )
    for event in events:
        attrs = event["Actor"]["Attributes"]
        entry = found.setdefault(event["Actor"]["ID"][:12], {})
        at = event["timeNano"] / 1e9
        if event["Action"] == "kill":
            entry.setdefault("signals", []).append(attrs.get("signal"))
            if attrs.get("signal") == "15":
                entry.setdefault("term", at)
        elif event["Action"] == "die":
            entry.update(died=at, exit=int(attrs.get("exitCode", -1)))
    return {cid: entry for cid, entry in found.items() if "died" in entry}


def _stopped_by_itself(entry: dict[str, Any]) -> bool:
    """SIGTERM, then the agent's own exit within STOPS_WITHIN: 0, or 143 when the signal
    came before the process had installed its handler (a task stopped while starting)
    -- never Swarm's SIGKILL (137) at the end of stop_grace_period."""
    term = entry.get("term")
    return (
        term is not None
        and entry["exit"] in (0, 143)
        and "9" not in entry["signals"]
        and entry["died"] - term < STOPS_WITHIN
    )


def _follow_logs(client: docker.DockerClient, container_id: str) -> list[str]:
    """The container's log lines as they come, until it stops (a removed service's
    containers are gone soon after)."""
    lines: list[str] = []

    def follow() -> None:
        with contextlib.suppress(docker.errors.APIError):
            for chunk in client.api.logs(container_id, stream=True, follow=True):
                lines.append(chunk.decode(errors="replace"))

    threading.Thread(target=follow, name="agent-log", daemon=True).start()
    return lines


def test_the_agent_image_syncs_the_example_and_upgrades_itself_from_git(
    agent_setup: dict[str, Any], cli: Cli, docker_client: docker.DockerClient
) -> None:
    repo: Path = agent_setup["repo"]
    agent: AgentService = agent_setup["agent"]
    app_stack: str = agent_setup["app_stack"]
    agent_stack: str = agent_setup["agent_stack"]
    started = time.time()

    # The operator's one step: deploy the agent's own application from the repository.
    result = cli("sync", "--env", "development", "--app", "gitswarm", "--repo", str(repo))
    assert result.exit_code == 0, result.output + agent.diagnosis()
    head = _git(repo, "rev-parse", "HEAD")
    (first,) = agent.containers()
    assert first.attrs["Config"]["User"].startswith("10001:")  # not root

    # The agent in the container syncs the example (and its own app) to Synced/Healthy.
    def synced(app: str, revision: str) -> Callable[[], bool]:
        def check() -> bool:
            status = agent.status(app)
            return (status["sync"], status["health"], status["deployed"]) == (
                "Synced",
                "Healthy",
                revision,
            )

        return check

    _wait(
        "the example synced by the agent", synced("medianest", head), 120, diagnose=agent.diagnosis
    )
    _wait("the agent's own app synced", synced("gitswarm", head), 60, diagnose=agent.diagnosis)
    services = docker_client.api.services(
        filters={"label": f"com.docker.stack.namespace={app_stack}"}
    )
    assert sorted(s["Spec"]["Name"] for s in services) == [
        f"{app_stack}_medianest-app",
        f"{app_stack}_medianest-worker",
    ]
    before = agent.api("/api/v1/history?env=development&limit=100")["operations"]
    example_syncs = [
        o["id"] for o in before if o["app"] == "medianest" and o["result"] == "Succeeded"
    ]
    assert example_syncs, before
    health = docker_client.containers.get(first.id).attrs["State"]["Health"]
    assert health["Status"] == "healthy", health  # the HEALTHCHECK on /healthz

    # A new agent version through Git: the agent rolls out its own stack.
    docker_client.images.get(f"{IMAGE}:1").tag(IMAGE, "2")
    env_file = repo / "environments/development/.env"
    env_file.write_text(env_file.read_text().replace(f"{IMAGE}:1", f"{IMAGE}:2"))
    _git(repo, "commit", "-qam", "gitswarm 2")
    _git(repo, "push", "-q", "origin", "main")
    upgrade = _git(repo, "rev-parse", "HEAD")

    def upgraded() -> Any:
        running = agent.containers()
        if len(running) != 1 or running[0].id == first.id:
            return None
        image = running[0].attrs["Config"]["Image"]
        return running[0] if image.startswith(f"{IMAGE}:2") else None

    second = _wait("the new agent task alone", upgraded, 180, every=2.0, diagnose=agent.diagnosis)
    _wait(
        "the upgrade recorded as synced", synced("gitswarm", upgrade), 90, diagnose=agent.diagnosis
    )
    _wait(
        "the example at the new revision",
        synced("medianest", upgrade),
        60,
        diagnose=agent.diagnosis,
    )

    # The new agent holds the lease and keeps the history (the store on the volume).
    ready = agent.api("/readyz", second)
    assert ready["checks"]["leader"]["detail"] == "active", ready
    assert ready["checks"]["store"]["detail"].endswith("/var/lib/gitswarm/gitswarm/state.db")
    after = agent.api("/api/v1/history?env=development&limit=100", second)["operations"]
    assert set(example_syncs) <= {o["id"] for o in after}
    own = [o for o in after if o["app"] == "gitswarm" and o["revision"] == upgrade]
    assert any(o["result"] == "Succeeded" for o in own), own
    assert not [o for o in after if o["result"] == "Running"], after

    # The old agent stopped by itself on Swarm's SIGTERM once the new one was up
    # (start-first), not by the SIGKILL at the end of stop_grace_period.
    stops = _stops(docker_client, agent_stack, since=started)
    assert _stopped_by_itself(stops.get(first.id[:12], {})), (stops, agent.diagnosis())
    old_log = docker_client.api.logs(first.id).decode(errors="replace")
    assert '"event": "stopped"' in old_log, old_log[-3000:]

    # Stopping the agent's service: the agent (which heals its own stack, so it sees its
    # service go) ends its running work and exits within seconds, its log says so.
    lines = _follow_logs(docker_client, second.id)
    stopping, clock = time.time(), time.monotonic()
    _stop_agent(docker_client, agent_stack)
    print(f"agent service stopped and gone in {time.monotonic() - clock:.1f}s")
    stops = _stops(docker_client, agent_stack, since=stopping)
    assert second.id[:12] in stops, stops
    assert all(_stopped_by_itself(e) for e in stops.values()), stops
    _wait("the agent's last log line", lambda: '"event": "stopped"' in "".join(lines), 5)
    assert "Traceback" not in "".join(lines), "".join(lines)[-3000:]
