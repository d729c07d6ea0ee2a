"""The example repository of `gitswarm init` passes the policy sets we recommend for it.

render/ is written elsewhere, so the rendered stack is built by hand here: base and
overlay merged key by key, `${VAR}` replaced from the environment's .env, gitswarm's
labels added, and a source map from ruamel.yaml's line marks.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from ruamel.yaml import YAML

from gitswarm.model.config import Environment, Target
from gitswarm.model.stack import DesiredStack, SourceLocation, SourceMap
from gitswarm.policy import evaluate, parse_settings

EXAMPLE = resources.files("gitswarm") / "example"
ENVS = ("development", "staging", "production")

# The `policies:` blocks recommended for the example's gitswarm.yml (keep in step with the
# reply to the lead / README).
RECOMMENDED = """\
development:
  policies:
    # Fast feedback: the security basics block, everything else warns.
    no_root_containers: enforce
    no_privileged_containers: enforce
    allowed_registries: {mode: warn, registries: ["127.0.0.1:5000"]}

staging:
  policies:
    # Production's rules, enforced one step earlier; no deployment windows.
    default: enforce
    required_labels: {mode: enforce, labels: [com.medianest.team]}
    no_latest_tag: {mode: enforce, require: version}
    allowed_registries: {mode: enforce, registries: ["127.0.0.1:5000"]}

production:
  policies:
    default: enforce
    required_resource_limits: {mode: enforce, reservations: true}
    required_labels: {mode: enforce, labels: [com.medianest.team]}
    no_latest_tag: {mode: enforce, require: version}
    allowed_registries: {mode: enforce, registries: ["127.0.0.1:5000"]}
    deployment_windows:
      mode: warn            # the demo deploys at any hour; a real team sets enforce
      timezone: Europe/Berlin
      allow: ["Mon-Thu 09:00-16:00", "Fri 09:00-12:00"]
      deny:
        - {name: year-end freeze, schedule: "0 0 20 12 *", duration: 14d}  # to 3 Jan
    rego:
      mode: enforce
      params: {team_registry: "127.0.0.1:5000"}   # policies/team_registry.rego
"""

MONDAY_10_BERLIN = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
SATURDAY = datetime(2025, 6, 7, 10, 0, tzinfo=UTC)
CHRISTMAS_EVE_10_BERLIN = datetime(2025, 12, 24, 9, 0, tzinfo=UTC)  # a Wednesday


def load(path: str) -> Any:
    return YAML().load(io.StringIO((EXAMPLE / path).read_text()))


def dotenv(env: str) -> dict[str, str]:
    values = {"GITSWARM_ENV": env}
    for line in (EXAMPLE / "environments" / env / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, Mapping):
        return {str(k): interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, values) for v in node]
    if isinstance(node, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], node)
    return node


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def locations(node: Any, file: str, path: tuple[str | int, ...] = ()) -> dict[Any, SourceLocation]:
    found: dict[Any, SourceLocation] = {}
    if isinstance(node, Mapping):
        for key in node:
            line, column = node.lc.key(key)
            here = (*path, str(key))
            found[here] = SourceLocation(file, line + 1, column + 1)
            found.update(locations(node[key], file, here))
    return found


def rendered(env: str) -> DesiredStack:
    base_file = "base/docker-compose.yml"
    overlay_file = f"environments/{env}/docker-compose.yml"
    base, overlay = load(base_file), load(overlay_file)
    values = dotenv(env)
    compose = merge(interpolate(base, values), interpolate(overlay, values))
    stack = f"medianest-{env}"
    for spec in compose["services"].values():
        spec.setdefault("deploy", {}).setdefault("labels", {}).update(
            {
                "io.gitswarm.owner": "gitswarm",
                "io.gitswarm.app": "medianest",
                "io.gitswarm.env": env,
            }
        )
    for kind in ("configs", "secrets"):  # as render/ declares them: external, hashed names
        for key in compose.get(kind, {}):
            compose[kind][key] = {"external": True, "name": f"{stack}_{key}_0123456789ab"}
    smap = {**locations(base, base_file), **locations(overlay, overlay_file)}
    return DesiredStack(
        app="medianest",
        env=env,
        stack=stack,
        revision="e" * 40,
        compose=compose,
        files=(base_file, overlay_file),
        source_map=SourceMap(smap),
    )


def environment(env: str, policies: Mapping[str, Any]) -> Environment:
    return Environment(
        name=env,
        order=ENVS.index(env),
        target=Target("local"),
        path=f"environments/{env}",
        policies=policies,
    )


def recommended(env: str) -> Any:
    return YAML().load(io.StringIO(RECOMMENDED))[env]["policies"]


def rego_sources() -> dict[str, str]:
    folder = EXAMPLE / "policies"
    return {
        f"policies/{f.name}": f.read_text() for f in folder.iterdir() if f.name.endswith(".rego")
    }


@pytest.mark.parametrize("env", ENVS)
def test_the_example_passes_the_recommended_policies(env: str) -> None:
    parse_settings(recommended(env), env=env)  # valid as written
    report = evaluate(
        rendered(env),
        environment(env, recommended(env)),
        rego_sources=rego_sources(),
        now=MONDAY_10_BERLIN,
    )
    assert [str(r) for r in report.results] == []
    assert not report.blocked


def test_production_outside_its_window_only_warns_in_the_demo() -> None:
    for now in (SATURDAY, CHRISTMAS_EVE_10_BERLIN):
        report = evaluate(
            rendered("production"),
            environment("production", recommended("production")),
            rego_sources=rego_sources(),
            now=now,
        )
        assert not report.blocked
        [warning] = report.warnings
        assert warning.rule == "deployment_windows"
    assert "'year-end freeze'" in warning.message
    assert "next opens 2026-01-05T08:00:00+00:00" in warning.message  # Monday after the freeze


def test_the_example_passes_every_rule_enforced_with_its_strictest_useful_parameters() -> None:
    strict = {
        "default": "enforce",
        "required_resource_limits": {"reservations": True},
        "required_labels": {"labels": {"com.medianest.team": "^[a-z]+$"}},
        "naming_conventions": {
            "stack": "^medianest-(development|staging|production)$",
            "networks": "^[a-z]+$",
            "configs": "^[a-z_]+$",
            "secrets": "^[a-z_]+$",
        },
        "no_latest_tag": {"require": "version"},
        "allowed_registries": {"registries": ["127.0.0.1:5000/medianest"]},
    }
    for env in ENVS:
        report = evaluate(rendered(env), environment(env, strict), rego_sources={}, now=SATURDAY)
        assert [str(r) for r in report.results] == [], env


def test_what_the_example_would_violate_if_digests_were_required() -> None:
    policies = {"default": "off", "no_latest_tag": {"mode": "enforce", "require": "digest"}}
    report = evaluate(
        rendered("production"), environment("production", policies), rego_sources={}, now=SATURDAY
    )
    assert [(r.service, r.location) for r in report.violations] == [
        ("medianest-app", SourceLocation("base/docker-compose.yml", 12, 5)),
        ("medianest-worker", SourceLocation("base/docker-compose.yml", 52, 5)),
    ]


def test_the_team_registry_policy_guards_production_only() -> None:
    stack = rendered("production")
    moved = merge(
        dict(stack.compose),
        {"services": {"medianest-worker": {"image": "docker.io/library/busybox:1.36"}}},
    )
    tampered = DesiredStack(
        app=stack.app,
        env=stack.env,
        stack=stack.stack,
        revision=stack.revision,
        compose=moved,
        files=stack.files,
        source_map=stack.source_map,
    )
    report = evaluate(
        tampered,
        environment("production", {"default": "off"}),
        rego_sources=rego_sources(),
        now=SATURDAY,
    )
    [violation] = report.violations
    assert violation.rule == "rego:gitswarm.team_registry"
    assert violation.service == "medianest-worker"
    assert violation.location == SourceLocation("base/docker-compose.yml", 51, 3)
    assert "is not from the team registry 127.0.0.1:5000" in violation.message
    # a different registry given as a parameter moves the policy with it
    params = {"default": "off", "rego": {"params": {"team_registry": "registry.acme.test"}}}
    report = evaluate(
        rendered("production"),
        environment("production", params),
        rego_sources=rego_sources(),
        now=SATURDAY,
    )
    assert {r.service for r in report.violations} == {"medianest-app", "medianest-worker"}
    # development may pull from anywhere
    dev = evaluate(
        DesiredStack(
            app="medianest",
            env="development",
            stack="medianest-development",
            revision=None,
            compose=moved,
        ),
        environment("development", {"default": "off"}),
        rego_sources=rego_sources(),
        now=SATURDAY,
    )
    assert not dev.blocked
