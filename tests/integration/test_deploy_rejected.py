"""`docker stack deploy` on the real swarm: what it refuses, how gitswarm tells a refusal
from transient trouble, and what it is given (issue 12).

- A stack the engine refuses (here a change of service mode, which only the engine can
  tell) is recorded once as DeployRejected, alerted once, not retried; the next commit
  deploys.
- The refusals of the real CLI and engine (bogus mode, restart condition, bad port,
  undeclared network) are DeployRejected, with the real error line and none of the
  CLI's chatter; an engine that cannot be reached is a retryable SwarmError.
- Every fragment `validate` refuses (tests/unit/test_render_swarmspec.py) is refused by
  the engine too, or silently changed by it; every fragment it takes, the engine takes.
- The CLI never fills an `environment:` entry in from the agent's environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import docker
import pytest

from gitswarm.errors import DeployRejected, SwarmError
from gitswarm.model.config import Target
from gitswarm.swarm.client import DockerSwarm
from tests.conftest import SwarmUnderTest
from tests.gitops import _dump, service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.unit.test_render_swarmspec import ACCEPTED, HEAD, REFUSED

pytestmark = pytest.mark.swarm

TAIL = " (not retried: the same commit would be refused again; push a fix)"


def test_a_stack_the_engine_refuses_is_recorded_once_alerted_once_and_not_retried(
    rig: AgentRig, docker_client: docker.DockerClient
) -> None:
    first = rig.push({"worker": service()}, "replicated")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        # validate takes this (the file is fine); Swarm cannot change a service's mode.
        refused = rig.push({"worker": service(deploy={"mode": "global"})}, "global now")
        assert rig.github_push(refused) == 202

        def failed() -> list[Any]:
            return [o for o in rig.operations("sync") if o.revision == refused and o.result]

        wait_for(lambda: any(o.result == "Failed" for o in failed()), 60)
        wait_for(rig.agent.idle, 30)
        sync_timers = [t for t in rig.agent.state.queue.timers if t.key[0] == "sync"]
        assert sync_timers == []  # no retry scheduled
        time.sleep(8)  # the old backoff retried after 2 s and 6 s
        [op] = failed()
        assert op.result == "Failed" and op.reason == "DeployRejected"
        assert op.message == (  # after what triggered it
            "github push to refs/heads/main: "
            f"docker stack deploy refused stack {rig.stack}: failed to update service "
            f"{rig.stack}_worker: Error response from daemon: rpc error: code = Unimplemented "
            f"desc = service mode change is not allowed{TAIL}"
        )
        status = rig.status()
        assert status.sync == "OutOfSync" and status.health == "Healthy"
        assert status.reason == "DeployRejected" and status.revision == first
        assert rig.receiver is not None
        rig.receiver.wait_for(1, timeout=10)
        titles = [r["title"] for r in rig.receiver.received]
        assert [t for t in titles if "sync failed" in t] == [
            f"gitswarm: app/dev sync failed @ {refused[:12]}"
        ]
        assert not rig.operations("rollback")  # nothing was applied: nothing to undo

        fixed = rig.push({"worker": service(environment={"V": "2"})}, "replicated again")
        assert rig.github_push(fixed) == 202
        wait_for(rig.deployed(fixed), 60)


CLI_REFUSED = {
    "bogus mode": (
        {"security_opt": ["no-new-privileges:true"], "deploy": {"mode": "bogus"}},
        "service web: Unknown mode: bogus",
    ),
    "restart condition": (
        {"deploy": {"restart_policy": {"condition": "sometimes"}}},
        "failed to create service {stack}_web: Error response from daemon: invalid "
        'RestartCondition: "sometimes"',
    ),
    "bad port": ({"ports": ["99999:80"]}, "services.web.ports.0 Does not match format 'ports'"),
    "undeclared network": ({"networks": ["nope"]}, 'service web: undefined network "nope"'),
}


def _stack_file(web: dict[str, Any]) -> str:
    return _dump({"version": "3.8", "services": {"web": {**service(), **web}}})


@pytest.mark.parametrize("case", sorted(CLI_REFUSED))
def test_the_real_cli_refusals_are_stalling_with_the_real_error_line(
    case: str, swarm: SwarmUnderTest, stack_name: str, registry: str
) -> None:
    web, line = CLI_REFUSED[case]
    client = DockerSwarm(Target("t", url=swarm.docker_host))
    try:
        with pytest.raises(DeployRejected) as caught:
            client.deploy(stack_name, _stack_file(web), resolve_image="never")
    finally:
        client.close()
    assert caught.value.message == (
        f"docker stack deploy refused stack {stack_name}: {line.format(stack=stack_name)}{TAIL}"
    )
    assert not caught.value.retryable


def test_an_engine_that_cannot_be_reached_is_transient(
    swarm: SwarmUnderTest, tmp_path: Any
) -> None:
    client = DockerSwarm(Target("t", url=swarm.docker_host))
    dead = f"unix://{tmp_path}/nothing.sock"
    client._host = dead  # the engine goes away after the client connected
    try:
        with pytest.raises(SwarmError) as caught:
            client.deploy("x", _stack_file({"deploy": {"mode": "bogus"}}), resolve_image="never")
    finally:
        client.close()
    assert type(caught.value) is SwarmError and caught.value.retryable
    assert caught.value.message == (
        f"docker stack deploy x failed: Cannot connect to the Docker daemon at {dead}. Is the "
        "docker daemon running?"
    )


# --- validate's rules against the engine ---------------------------------------------


def _port_config(client: docker.DockerClient, name: str) -> dict[str, Any]:
    ports: list[dict[str, Any]] = client.api.inspect_service(name)["Spec"]["EndpointSpec"]["Ports"]
    return ports[0]


# Values Swarm takes but turns into something else (or that no node can ever match):
# validate refuses them; the engine shows what it made of them.
SILENT: dict[str, Callable[[docker.DockerClient, str], bool]] = {
    "port-protocol": lambda c, n: _port_config(c, n)["Protocol"] == "tcp",
    "port-mode": lambda c, n: _port_config(c, n)["PublishMode"] == "ingress",
    "port-range": lambda c, n: _port_config(c, n)["PublishedPort"] == 70000,
    "legacy-restart-negative": lambda c, n: (
        c.api.inspect_service(n)["Spec"]["TaskTemplate"]["RestartPolicy"]["MaxAttempts"]
        == 2**64 - 1
    ),
    "constraint-unknown-key": lambda c, n: bool(
        c.api.inspect_service(n)["Spec"]["TaskTemplate"]["Placement"]["Constraints"]
    ),
}


def _raw(fragment: str, index: int) -> str:
    """The case as a file for `docker stack deploy` itself, with a port of its own."""
    return 'version: "3.9"\n' + (HEAD + fragment).replace("8080", str(18100 + index))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_validate_refuses_the_engine_refuses_or_changes(
    name: str,
    swarm: SwarmUnderTest,
    stack_name: str,
    registry: str,
    docker_client: docker.DockerClient,
) -> None:
    fragment = REFUSED[name][0]
    client = DockerSwarm(Target("t", url=swarm.docker_host))
    try:
        if name in SILENT:
            client.deploy(
                stack_name, _raw(fragment, sorted(REFUSED).index(name)), resolve_image="never"
            )
            assert SILENT[name](docker_client, f"{stack_name}_web")
        else:
            with pytest.raises(DeployRejected):
                client.deploy(
                    stack_name, _raw(fragment, sorted(REFUSED).index(name)), resolve_image="never"
                )
    finally:
        client.close()


def test_what_validate_takes_the_engine_takes(
    swarm: SwarmUnderTest, stack_name: str, registry: str
) -> None:
    """Every accepted fragment as a service of one stack, deployed at once."""
    services = []
    for index, name in enumerate(sorted(ACCEPTED)):
        body = _raw(ACCEPTED[name], 50 + index).split("services:\n", 1)[1]
        services.append(body.replace("  web:\n", f"  {name}:\n", 1))
    client = DockerSwarm(Target("t", url=swarm.docker_host))
    try:
        client.deploy(
            stack_name, 'version: "3.9"\nservices:\n' + "".join(services), resolve_image="never"
        )
        deployed = {s.compose_name for s in client.services(stack_name)}
    finally:
        client.close()
    assert deployed == set(ACCEPTED)


# --- what the CLI is given -------------------------------------------------------------


def test_an_entry_without_a_value_is_never_filled_from_the_agents_environment(
    swarm: SwarmUnderTest,
    stack_name: str,
    registry: str,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_TOKEN", "s3cr3t-of-the-agent")
    monkeypatch.setenv("EMPTY_ONE", "also-the-agents")
    stack = _stack_file({"environment": {"AGENT_TOKEN": None, "EMPTY_ONE": "", "SET": "1"}})
    client = DockerSwarm(Target("t", url=swarm.docker_host))
    try:
        client.deploy(stack_name, stack, resolve_image="never")
    finally:
        client.close()
    spec = docker_client.api.inspect_service(f"{stack_name}_web")["Spec"]
    env = spec["TaskTemplate"]["ContainerSpec"]["Env"]
    assert env == ["AGENT_TOKEN", "EMPTY_ONE=", "SET=1"]
    assert "s3cr3t" not in str(spec) and "also-the-agents" not in str(spec)
