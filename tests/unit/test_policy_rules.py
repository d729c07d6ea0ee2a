"""Each built-in rule, table-driven: a passing and a failing compose fragment.

Every rule runs through the public gate (`evaluate`) with only that rule enforced, on a
DesiredStack built by hand; a failure must name the service and the rule.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from gitswarm.model.config import Environment, Target
from gitswarm.model.policy import PolicyReport
from gitswarm.model.stack import DesiredStack, SourceLocation, SourceMap
from gitswarm.policy import evaluate
from gitswarm.policy.compose import exposes, parse_image

NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)

# A service that passes every built-in rule with its default parameters.
CLEAN: dict[str, Any] = {
    "image": "127.0.0.1:5000/medianest/app:1.4.2",
    "user": "1000:1000",
    "read_only": True,
    "security_opt": ["no-new-privileges:true"],
    "healthcheck": {"test": ["CMD", "true"], "interval": "5s"},
    "deploy": {
        "labels": {"com.medianest.team": "platform"},
        "resources": {
            "limits": {"cpus": "0.50", "memory": "64M"},
            "reservations": {"cpus": "0.05", "memory": "16M"},
        },
        "update_config": {"failure_action": "rollback"},
    },
}


def service(**changes: Any) -> dict[str, Any]:
    """CLEAN with changes: a value of None removes the key; `a__b` reaches into mapping a."""
    spec = copy.deepcopy(CLEAN)
    for key, value in changes.items():
        target = spec
        *parents, last = key.split("__")
        for parent in parents:
            target = target.setdefault(parent, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return spec


def stack(
    services: Mapping[str, Any],
    *,
    name: str = "medianest-production",
    extra: Mapping[str, Any] | None = None,
    source_map: SourceMap | None = None,
) -> DesiredStack:
    return DesiredStack(
        app="medianest",
        env="production",
        stack=name,
        revision="0" * 40,
        compose={"services": dict(services), **(extra or {})},
        source_map=source_map or SourceMap(),
    )


def env(policies: Mapping[str, Any]) -> Environment:
    return Environment(
        name="production",
        order=2,
        target=Target("local"),
        path="environments/production",
        policies={"default": "off", **policies},
    )


def check(desired: DesiredStack, rule: str, settings: Any = "enforce") -> PolicyReport:
    return evaluate(desired, env({rule: settings}), rego_sources={}, now=NOW)


CASES: list[tuple[str, Any, dict[str, Any], dict[str, Any], str]] = [
    # rule, settings, passing service, failing service, words in the failure
    ("no_root_containers", "enforce", service(), service(user="0:0"), "runs as root"),
    ("no_root_containers", "enforce", service(user="app"), service(user="root"), "runs as root"),
    ("no_root_containers", "enforce", service(user=1000), service(user=None), "sets no user"),
    (
        "required_resource_limits",
        "enforce",
        service(),
        service(deploy__resources__limits={"cpus": "0.5"}),
        "sets no memory in deploy.resources.limits",
    ),
    (
        "required_resource_limits",
        "enforce",
        service(deploy__resources__limits={"cpus": 1, "memory": "1G"}),
        service(deploy__resources__limits={"cpus": "0", "memory": "64M"}),
        "sets no cpus",
    ),
    (
        "required_resource_limits",
        {"mode": "enforce", "reservations": True},
        service(),
        service(deploy__resources__reservations=None),
        "deploy.resources.reservations",
    ),
    (
        "no_privileged_containers",
        "enforce",
        service(cap_add=["NET_BIND_SERVICE"]),
        service(privileged=True),
        "is privileged",
    ),
    (
        "no_privileged_containers",
        "enforce",
        service(cap_add=["CHOWN"]),
        service(cap_add=["CHOWN", "cap_sys_admin"]),
        "dangerous capabilities SYS_ADMIN",
    ),
    (
        "no_privileged_containers",
        "enforce",
        service(volumes=["data:/data", "/etc/localtime:/etc/localtime:ro"]),
        service(volumes=["/var/run/docker.sock:/var/run/docker.sock"]),
        "exposes /var/run/docker.sock",
    ),
    (
        "no_privileged_containers",
        "enforce",
        service(volumes=[{"type": "volume", "source": "data", "target": "/data"}]),
        service(volumes=[{"type": "bind", "source": "/", "target": "/host"}]),
        "bind-mounts the host root /",
    ),
    (
        "no_privileged_containers",
        "enforce",
        service(volumes=["/srv/app:/app"]),
        service(volumes=["/var:/hostvar:ro"]),  # a folder that holds docker.sock
        "/var, which exposes /var/run/docker.sock",
    ),
    (
        "no_privileged_containers",
        "enforce",
        service(network_mode="bridge"),
        service(network_mode="host"),
        "host network",
    ),
    ("no_privileged_containers", "enforce", service(), service(pid="host"), "pid: host"),
    ("no_privileged_containers", "enforce", service(), service(ipc="host"), "ipc: host"),
    (
        "no_privileged_containers",
        "enforce",
        service(),
        service(devices=["/dev/fuse:/dev/fuse"]),
        "maps host devices",
    ),
    (
        "no_privileged_containers",
        "enforce",
        service(security_opt=["no-new-privileges:true", "label:type:svirt_apache_t"]),
        service(security_opt=["seccomp=unconfined"]),
        "switches off confinement",
    ),
    (
        "required_security_contexts",
        "enforce",
        service(),
        service(read_only=False),
        "writable root filesystem",
    ),
    (
        "required_security_contexts",
        "enforce",
        service(security_opt=["no-new-privileges"]),
        service(security_opt=["no-new-privileges:false"]),
        "no-new-privileges",
    ),
    (
        "required_security_contexts",
        {"mode": "enforce", "read_only": False},
        service(read_only=None),
        service(security_opt=None),
        "gain privileges",
    ),
    (
        "required_labels",
        {"mode": "enforce", "labels": ["com.medianest.team"]},
        service(),
        service(deploy__labels={"com.medianest.team": ""}),
        "has no label com.medianest.team in deploy.labels",
    ),
    (
        "required_labels",
        {"mode": "enforce", "labels": {"com.medianest.team": "^(platform|data)$"}},
        service(deploy__labels=["com.medianest.team=data"]),
        service(deploy__labels=["com.medianest.team=marketing"]),
        "does not match",
    ),
    (
        "required_labels",
        {"mode": "enforce", "labels": ["tier"], "where": "container"},
        service(labels={"tier": "web"}),
        service(deploy__labels={"tier": "web"}),
        "has no label tier in labels",
    ),
    (
        "no_latest_tag",
        "enforce",
        service(image="127.0.0.1:5000/app:2025-06-01"),
        service(image="127.0.0.1:5000/app:latest"),
        "floating tag :latest",
    ),
    (
        "no_latest_tag",
        "enforce",
        service(image="nginx:1.27"),
        service(image="127.0.0.1:5000/medianest/app"),
        "has no tag, so Docker pulls :latest",
    ),
    (
        "no_latest_tag",
        {"mode": "enforce", "require": "version"},
        service(image="nginx:v1.27.3-alpine"),
        service(image="nginx:1"),
        "is not a version",
    ),
    (
        "no_latest_tag",
        {"mode": "enforce", "require": "digest"},
        service(image="nginx:latest@sha256:" + "a" * 64),
        service(image="nginx:1.27.3"),
        "not pinned by digest",
    ),
    ("no_latest_tag", "enforce", service(), service(image=None), "has no image"),
    (
        "allowed_registries",
        {"mode": "enforce", "registries": ["127.0.0.1:5000"]},
        service(),
        service(image="nginx:1.27"),
        "is from docker.io, which is not an allowed registry",
    ),
    (
        "allowed_registries",
        {"mode": "enforce", "registries": ["ghcr.io/acme", "docker.io/library"]},
        service(image="ghcr.io/acme/api:1.0"),
        service(image="ghcr.io/acmecorp/api:1.0"),
        "is from ghcr.io",
    ),
    (
        "allowed_registries",
        {"mode": "enforce", "registries": ["docker.io/library"]},
        service(image="nginx:1.27"),
        service(image="bitnami/nginx:1.27"),
        "not an allowed registry",
    ),
    (
        "required_healthcheck",
        "enforce",
        service(),
        service(healthcheck=None),
        "declares no healthcheck",
    ),
    (
        "required_healthcheck",
        "enforce",
        service(healthcheck={"test": "curl -f http://localhost/"}),
        service(healthcheck={"disable": True}),
        "disables its healthcheck",
    ),
    (
        "required_healthcheck",
        "enforce",
        service(healthcheck=None, deploy__mode="replicated-job"),
        service(healthcheck={"interval": "5s"}),
        "healthcheck has no test",
    ),
    (
        "update_config_rollback",
        "enforce",
        service(),
        service(deploy__update_config={"failure_action": "pause"}),
        "failure_action: pause",
    ),
    (
        "host_ports_stop_first",
        "enforce",
        service(
            ports=[{"mode": "host", "target": 80, "published": 8080}],
            deploy__update_config={"order": "stop-first"},
        ),
        service(
            ports=[{"mode": "host", "target": 80, "published": 8080}],
            deploy__update_config={"order": "start-first"},
        ),
        "publishes port 8080 in host mode but its update_config order is start-first",
    ),
    (
        "host_ports_stop_first",
        "enforce",
        service(
            ports=[{"mode": "ingress", "target": 80, "published": 8080}],
            deploy__update_config={"order": "start-first"},
        ),
        service(
            ports=[{"mode": "host", "target": 80, "published": 8080}],
            deploy__rollback_config={"order": "start-first"},
        ),
        "rollback_config order is start-first",
    ),
    (
        "update_config_rollback",
        "enforce",
        service(deploy__update_config=None, deploy__mode="global-job"),
        service(deploy__update_config=None),
        "Swarm's default pause",
    ),
    (
        "naming_conventions",
        "enforce",
        service(),
        service(),  # the failing case is in the service *name*, see below
        "does not match",
    ),
]


@pytest.mark.parametrize(
    ("rule", "settings", "good", "bad", "words"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_rule_passes_and_fails(
    rule: str, settings: Any, good: dict[str, Any], bad: dict[str, Any], words: str
) -> None:
    assert check(stack({"web": good}), rule, settings).results == ()
    bad_name = "Web_Server" if rule == "naming_conventions" else "web"
    report = check(stack({bad_name: bad, "api": good}), rule, settings)
    assert report.blocked
    [result] = report.violations
    assert result.rule == rule
    assert result.service == bad_name
    assert f"service '{bad_name}'" in result.message
    assert rule in result.message
    assert words in result.message
    [problem] = report.as_problems()
    assert problem.rule == rule


def test_warn_mode_reports_without_blocking() -> None:
    report = check(stack({"web": service(user=None)}), "no_root_containers", "warn")
    assert not report.blocked
    [warning] = report.warnings
    assert warning.mode == "warn"
    assert report.violations == ()
    assert report.as_problems() == []
    [problem] = report.as_problems(include_warnings=True)
    assert problem.message.startswith("warning: service 'web'")


def test_one_service_can_fail_a_rule_several_ways() -> None:
    bad = service(privileged=True, cap_add=["ALL"], pid="host", volumes=["/:/host"])
    report = check(stack({"web": bad}), "no_privileged_containers")
    assert len(report.violations) == 4


def test_swarm_joins_the_host_network_through_an_external_network_named_host() -> None:
    extra = {"networks": {"hostnet": {"external": True, "name": "host"}, "backend": {}}}
    desired = stack({"web": service(networks=["hostnet"])}, extra=extra)
    [result] = check(desired, "no_privileged_containers").violations
    assert "joins the host network" in result.message
    legacy = {"networks": {"host": {"external": True}}}
    assert check(
        stack({"web": service(networks={"host": None})}, extra=legacy), "no_privileged_containers"
    ).blocked
    fine = stack({"web": service(networks=["backend"])}, extra=extra)
    assert not check(fine, "no_privileged_containers").blocked


def test_exempt_services_are_recorded_with_their_reason_and_do_not_block() -> None:
    settings = {"mode": "enforce", "exempt": {"node-exporter": "reads host /proc (SEC-142)"}}
    exporter = service(volumes=["/proc:/host/proc:ro"])
    report = check(
        stack({"node-exporter": exporter, "web": service()}), "no_privileged_containers", settings
    )
    assert not report.blocked
    [result] = report.exemptions
    assert result.status == "exempt"
    assert result.reason == "reads host /proc (SEC-142)"
    assert result.service == "node-exporter"


def test_naming_conventions_also_checks_what_swarm_refuses() -> None:
    long_name = "a" * 50
    report = check(stack({long_name: service()}, name="medianest-production"), "naming_conventions")
    [result] = report.violations
    assert "Swarm refuses the service name" in result.message
    custom = {
        "mode": "enforce",
        "networks": "^[a-z]+$",
        "stack": "^[a-z]+-(development|staging|production)$",
    }
    extra = {"networks": {"back_end": {}}}
    report = check(
        stack({"web": service()}, name="Medianest", extra=extra), "naming_conventions", custom
    )
    messages = sorted(r.message for r in report.violations)
    assert len(messages) == 2
    assert "network 'back_end' does not match" in messages[0]
    assert "stack name 'Medianest' does not match" in messages[1]


def test_results_carry_the_file_and_line_of_the_offending_key() -> None:
    source_map = SourceMap(
        {
            ("services", "web"): SourceLocation("base/docker-compose.yml", 3, 3),
            ("services", "web", "user"): SourceLocation(
                "environments/prod/docker-compose.yml", 7, 5
            ),
        }
    )
    desired = stack({"web": service(user="0")}, source_map=source_map)
    [result] = check(desired, "no_root_containers").violations
    assert result.location == SourceLocation("environments/prod/docker-compose.yml", 7, 5)
    assert str(result.problem()).startswith("environments/prod/docker-compose.yml:7:5: ")
    # a key that is missing falls back to its service
    desired = stack({"web": service(healthcheck=None)}, source_map=source_map)
    [result] = check(desired, "required_healthcheck").violations
    assert result.location == SourceLocation("base/docker-compose.yml", 3, 3)


@pytest.mark.parametrize(
    ("ref", "registry", "path", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.27", "docker.io", "library/nginx", "1.27", None),
        ("bitnami/nginx:1", "docker.io", "bitnami/nginx", "1", None),
        ("127.0.0.1:5000/medianest/app:1.0.0", "127.0.0.1:5000", "medianest/app", "1.0.0", None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app", "localhost:5000", "app", None, None),
        ("GHCR.io/acme/api@sha256:abc", "ghcr.io", "acme/api", None, "sha256:abc"),
        ("index.docker.io/library/redis:7", "docker.io", "library/redis", "7", None),
    ],
)
def test_image_references_are_read_as_docker_does(
    ref: str, registry: str, path: str, tag: str | None, digest: str | None
) -> None:
    image = parse_image(ref)
    assert (image.registry, image.path, image.tag, image.digest) == (registry, path, tag, digest)


def test_host_path_exposure() -> None:
    assert exposes("/var/run/docker.sock", "/var/run/docker.sock")
    assert exposes("/run", "/run/docker.sock")
    assert exposes("/proc/1", "/proc")
    assert not exposes("/var/runner", "/var/run/docker.sock")
    assert not exposes("/srv", "/proc")
