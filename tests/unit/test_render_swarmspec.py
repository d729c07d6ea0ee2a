"""`validate` refuses what `docker stack deploy` would refuse after the schema (issue 12):
the CLI's conversion to Swarm specs and the engine's own checks (render/swarmspec.py).

Each case is one service fragment, the line it starts on and the exact problem; the
same fragments go to the real engine in tests/integration/test_deploy_rejected.py,
which shows Docker refuses (or silently changes) every one of them and takes every
value accepted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.render.swarmspec import constraint_problem, parse_cpus

COMPOSE = "base/docker-compose.yml"
HEAD = "services:\n  web:\n    image: 127.0.0.1:5000/busybox:1\n"  # the fragment starts at line 4

# name: (fragment, line, column, message after "service web: "). A problem in an item of
# a list (a port, a mount, a constraint) is located at the list's key: lists merged from
# several files keep no line per item; the message names the item's index.
REFUSED: dict[str, tuple[str, int, int, str]] = {
    "mode": (
        "    deploy:\n      mode: bogus\n",
        5, 7,
        "deploy.mode 'bogus' is not a Swarm service mode; use replicated, global, "
        "replicated-job or global-job",
    ),
    "replicas-global": (
        "    deploy:\n      mode: global\n      replicas: 2\n",
        6, 7,
        "deploy.replicas cannot be used with deploy.mode 'global' (one task per node); "
        "remove replicas, or use mode replicated",
    ),
    "restart-condition": (
        "    deploy:\n      restart_policy:\n        condition: sometimes\n",
        6, 9,
        "deploy.restart_policy.condition 'sometimes' is not a restart condition; use none, "
        "on-failure or any",
    ),
    "restart-condition-case": (
        "    deploy:\n      restart_policy:\n        condition: ANY\n",
        6, 9,
        "deploy.restart_policy.condition 'ANY' is not a restart condition; use none, "
        "on-failure or any",
    ),
    "legacy-restart": (
        "    restart: sometimes\n",
        4, 5,
        "restart 'sometimes' is unknown; use no, always, unless-stopped or on-failure[:N]",
    ),
    "legacy-restart-count": (
        "    restart: on-failure:abc\n",
        4, 5,
        "restart 'on-failure:abc': the retry count must be a whole number",
    ),
    "legacy-restart-negative": (
        "    restart: on-failure:-1\n",
        4, 5,
        "restart 'on-failure:-1': the retry count must be a whole number",
    ),
    "endpoint-mode": (
        "    deploy:\n      endpoint_mode: weird\n",
        5, 7,
        "deploy.endpoint_mode 'weird' is not an endpoint mode; use vip or dnsrr",
    ),
    "failure-action": (
        "    deploy:\n      update_config:\n        failure_action: explode\n",
        6, 9,
        "deploy.update_config.failure_action 'explode' is not a failure action; use pause, "
        "continue or rollback",
    ),
    "rollback-failure-action": (
        "    deploy:\n      rollback_config:\n        failure_action: Pause\n",
        6, 9,
        "deploy.rollback_config.failure_action 'Pause' is not a failure action; use pause, "
        "continue or rollback",
    ),
    "update-delay": (
        "    deploy:\n      update_config:\n        delay: -1s\n",
        6, 9,
        "deploy.update_config.delay is negative (-1s); Swarm refuses that",
    ),
    "update-monitor": (
        "    deploy:\n      update_config:\n        monitor: -1s\n",
        6, 9,
        "deploy.update_config.monitor is negative (-1s); Swarm refuses that",
    ),
    "failure-ratio": (
        "    deploy:\n      update_config:\n        max_failure_ratio: 2\n",
        6, 9,
        "deploy.update_config.max_failure_ratio 2 is not between 0 and 1",
    ),
    "restart-window": (
        "    deploy:\n      restart_policy:\n        window: -1s\n",
        6, 9,
        "deploy.restart_policy.window is negative (-1s); Swarm refuses that",
    ),
    "cpus-not-a-number": (
        "    deploy:\n      resources:\n        limits:\n          cpus: abc\n",
        7, 11,
        "deploy.resources.limits.cpus 'abc': failed to parse abc as a rational number",
    ),
    "cpus-too-precise": (
        "    deploy:\n      resources:\n        limits:\n          cpus: '0.0000000001'\n",
        7, 11,
        "deploy.resources.limits.cpus '0.0000000001': value is too precise",
    ),
    "cpus-too-small": (
        "    deploy:\n      resources:\n        reservations:\n          cpus: '0.0001'\n",
        7, 11,
        "deploy.resources.reservations.cpus '0.0001' is below Swarm's minimum of 0.001 (or "
        "leave it unset)",
    ),
    "memory-too-small": (
        "    deploy:\n      resources:\n        limits:\n          memory: 1M\n",
        7, 11,
        "deploy.resources.limits.memory is 1048576 bytes, below Swarm's minimum of 4 MiB (or "
        "leave it unset)",
    ),
    "constraint-operator": (
        "    deploy:\n      placement:\n        constraints:\n          - node.role=manager\n",
        6, 9,
        "deploy.placement.constraints[0] 'node.role=manager': has no == or != (e.g. "
        "'node.role == manager')",
    ),
    "constraint-key": (
        "    deploy:\n      placement:\n        constraints:\n          - 1node == y\n",
        6, 9,
        "deploy.placement.constraints[0] '1node == y': key '1node' is invalid (letters, "
        "digits, '-', '_' and '.')",
    ),
    "constraint-value": (
        "    deploy:\n      placement:\n        constraints:\n          - node.labels.x==y!z\n",
        6, 9,
        "deploy.placement.constraints[0] 'node.labels.x==y!z': value 'y!z' is invalid",
    ),
    "constraint-unknown-key": (
        "    deploy:\n      placement:\n        constraints:\n          - node.lables.x==y\n",
        6, 9,
        "deploy.placement.constraints[0] 'node.lables.x==y': no node has the key "
        "'node.lables.x', so no task would ever be scheduled; use node.id, node.hostname, "
        "node.ip, node.role, node.platform.os, node.platform.arch, node.labels.<name> or "
        "engine.labels.<name>",
    ),
    "port-protocol": (
        "    ports:\n      - target: 80\n        published: 8080\n        protocol: tpc\n"
        "        mode: host\n",
        4, 5,
        "ports[0]: protocol 'tpc' is not tcp, udp or sctp (Swarm would silently use tcp)",
    ),
    "port-mode": (
        "    ports:\n      - target: 80\n        published: 8080\n        mode: hots\n",
        4, 5,
        "ports[0]: mode 'hots' is not ingress or host (Swarm would silently use ingress)",
    ),
    "port-range": (
        "    ports:\n      - target: 80\n        published: 70000\n        mode: host\n",
        4, 5,
        "ports[0]: published port 70000 is out of range (at most 65535)",
    ),
    "port-twice": (
        "    ports:\n      - '8080:80'\n      - '8080:81'\n",
        4, 5,
        "ports[1]: port 8080/tcp is published twice (also ports[0])",
    ),
    "dnsrr-ingress": (
        "    ports:\n      - '8080:80'\n    deploy:\n      endpoint_mode: dnsrr\n",
        4, 5,
        "ports[0] is published in ingress mode, which Swarm refuses with "
        "deploy.endpoint_mode dnsrr; publish it with mode: host",
    ),
    "mount-type": (
        "    volumes:\n      - type: weird\n        target: /x\n",
        4, 5,
        "volumes[0]: type 'weird' is not volume, bind, tmpfs, npipe or cluster",
    ),
    "mount-options": (
        "    volumes:\n      - type: bind\n        source: /a\n        target: /x\n"
        "        volume:\n          nocopy: true\n",
        4, 5,
        "volumes[0]: volume options do not apply to a bind mount",
    ),
    "tmpfs-source": (
        "    volumes:\n      - type: tmpfs\n        source: /a\n        target: /x\n",
        4, 5,
        "volumes[0]: a tmpfs mount takes no source",
    ),
    "mount-twice": (
        "    volumes:\n      - /tmp:/data\n      - /var:/data\n",
        4, 5,
        "volumes[1]: '/data' is mounted twice (also volumes[0]); Swarm refuses duplicate "
        "mount points",
    ),
    "health-interval": (
        "    healthcheck:\n      test: [CMD, 'true']\n      interval: 1us\n",
        6, 7,
        "healthcheck.interval 1µs is below Swarm's minimum of 1ms (0 means Docker's default)",
    ),
    "health-timeout": (
        "    healthcheck:\n      test: [CMD, 'true']\n      timeout: -2s\n",
        6, 7,
        "healthcheck.timeout -2s is below Swarm's minimum of 1ms (0 means Docker's default)",
    ),
    "health-test-and-disable": (
        "    healthcheck:\n      test: [CMD, 'true']\n      disable: true\n",
        4, 5,
        "healthcheck sets both test and disable; keep one",
    ),
}  # fmt: skip

# Values at the edges that Docker takes: validate must take them too.
ACCEPTED = {
    "modes": "    command: ['true']\n    deploy:\n      mode: replicated-job\n      replicas: 2\n",
    "global-job": "    command: ['true']\n    deploy:\n      mode: global-job\n",
    "endpoint-case": "    deploy:\n      endpoint_mode: DNSRR\n",
    "rollback-action": "    deploy:\n      rollback_config:\n        failure_action: rollback\n",
    "cpus-fraction": "    deploy:\n      resources:\n        limits:\n          cpus: 1/2\n",
    "cpus-minimum": "    deploy:\n      resources:\n        limits:\n          cpus: '0.001'\n",
    "memory-minimum": "    deploy:\n      resources:\n        limits:\n          memory: 4M\n",
    "constraints": (
        "    deploy:\n      placement:\n        constraints:\n          - node.role == manager\n"
        "          - node.labels.zone != eu-1\n          - engine.labels.os==linux\n"
    ),
    "same-port-tcp-udp": "    ports:\n      - '8080:80/tcp'\n      - '8080:80/udp'\n",
    "host-port-dnsrr": (
        "    ports:\n      - target: 80\n        published: 8080\n        mode: host\n"
        "    deploy:\n      endpoint_mode: dnsrr\n"
    ),
    "protocol-case": (
        "    ports:\n      - target: 80\n        published: 8080\n        protocol: UDP\n"
        "        mode: host\n"
    ),
    "legacy-restart": "    restart: on-failure:3\n",
    "legacy-restart-always-count": "    restart: always:3\n",
    "restart-policy-wins": (
        "    restart: sometimes\n    deploy:\n      restart_policy:\n        condition: any\n"
    ),
    "health-disable": "    healthcheck:\n      disable: true\n",
    "negative-rollback-delay": "    deploy:\n      rollback_config:\n        delay: -1s\n",
}


def _repo(tmp_path: Path, fragment: str) -> Path:
    repo = tmp_path / "repo"
    files = {
        "gitswarm.yml": (
            "project: t\napplication: {name: app, stack: s}\ntargets: {local: {}}\n"
            "environments:\n  dev: {target: local}\n"
        ),
        COMPOSE: HEAD + fragment,
        "environments/dev/docker-compose.yml": "services: {}\n",
        "environments/dev/.env": "",
    }
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    return repo


def _validate(repo: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["validate", "--repo", str(repo), "--env", "dev", *extra])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_docker_would_refuse_validate_refuses_with_file_line_and_rule(
    tmp_path: Path, name: str
) -> None:
    fragment, line, column, message = REFUSED[name]
    repo = _repo(tmp_path, fragment)
    code, out, err = _validate(repo, "--json")
    assert code == 2, out + err
    problems = json.loads(out)["problems"]
    assert problems == [
        {
            "file": COMPOSE,
            "line": line,
            "column": column,
            "rule": "swarm-spec",
            "message": f"service web: {message}",
        }
    ]
    code, out, err = _validate(repo)
    assert code == 2
    assert f"{COMPOSE}:{line}:{column}: service web: {message} [swarm-spec]\n" in out
    assert "Traceback" not in out + err


def test_validate_refuses_the_bogus_mode_of_issue_12_exactly(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "    deploy:\n      mode: bogus\n")
    code, out, err = _validate(repo)
    assert code == 2
    assert out == (
        "FAIL  app in dev\n"
        "base/docker-compose.yml:5:7: service web: deploy.mode 'bogus' is not a Swarm service "
        "mode; use replicated, global, replicated-job or global-job [swarm-spec]\n"
    )
    assert "Traceback" not in err
    # render refuses it too: nothing that would be refused is ever printed as deployable
    result = CliRunner().invoke(cli, ["render", "--repo", str(repo), "--env", "dev"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "deploy.mode 'bogus' is not a Swarm service mode" in result.stderr


def test_every_refusal_is_reported_at_once(tmp_path: Path) -> None:
    fragment = (
        "    deploy:\n      mode: bogus\n      endpoint_mode: weird\n"
        "      restart_policy:\n        condition: sometimes\n"
    )
    code, out, _ = _validate(_repo(tmp_path, fragment), "--json")
    assert code == 2
    assert [p["line"] for p in json.loads(out)["problems"]] == [5, 6, 8]


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_docker_takes_validate_takes(tmp_path: Path, name: str) -> None:
    code, out, err = _validate(_repo(tmp_path, ACCEPTED[name]))
    assert code == 0, out + err


def test_cpus_parse_as_the_cli_does() -> None:
    assert parse_cpus("0.5") == parse_cpus("1/2") == 500_000_000
    assert parse_cpus("2") == 2_000_000_000 and parse_cpus("1e-3") == 1_000_000
    for bad, words in (("abc", "failed to parse abc"), ("1e-10", "too precise")):
        with pytest.raises(ValueError, match=words):
            parse_cpus(bad)


def test_constraints_parse_as_swarm_does() -> None:
    assert constraint_problem("node.role==manager") is None
    assert constraint_problem(" node.labels.a b != x y ") is not None  # a space in the key
    assert constraint_problem("node.labels.disk == ssd") is None
    assert constraint_problem("node.hostname != a*b") is None
