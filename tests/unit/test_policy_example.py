"""The example repository of `gitswarm init` passes its own policies, in every environment.

The example is written with `gitswarm init` into a temp folder (its own age keys) and
rendered by the real render_stack; each environment is checked against the `policies:`
block of the example's gitswarm.yml, with the example's policies/*.rego.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from gitswarm.cli.example import write_example
from gitswarm.model.config import Environment
from gitswarm.model.stack import DesiredStack, SourceLocation
from gitswarm.policy import evaluate, parse_settings
from gitswarm.policy.rego import evaluate_rego
from gitswarm.render import render_stack
from gitswarm.repo import load_config
from gitswarm.repo.policies import rego_sources
from gitswarm.source.keys import load_identity
from gitswarm.source.tree import WorkTree

ENVS = ("development", "staging", "production")

MONDAY_10_BERLIN = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
SATURDAY = datetime(2025, 6, 7, 10, 0, tzinfo=UTC)
CHRISTMAS_EVE_10_BERLIN = datetime(2025, 12, 24, 9, 0, tzinfo=UTC)  # a Wednesday


@dataclass(frozen=True)
class Example:
    stacks: Mapping[str, DesiredStack]
    environments: Mapping[str, Environment]
    rego: Mapping[str, str]

    def evaluate(
        self,
        env: str,
        *,
        now: datetime,
        policies: Mapping[str, Any] | None = None,
        stack: DesiredStack | None = None,
        rego: bool = True,
    ) -> Any:
        environment = self.environments[env]
        if policies is not None:
            environment = replace(environment, policies=policies)
        return evaluate(
            stack or self.stacks[env],
            environment,
            rego_sources=self.rego if rego else {},
            now=now,
            rego=evaluate_rego,
        )


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    root = tmp_path_factory.mktemp("example")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GITSWARM_KEYS_DIR", str(root / "keys"))
        write_example(root / "repo", git=False)
        tree = WorkTree(root / "repo")
        config = load_config(tree)
        stacks = {
            env: render_stack(tree, config, "medianest", env, load_identity(config.project, env))
            for env in ENVS
        }
        yield Example(
            stacks=stacks,
            environments={env: config.environment(env) for env in ENVS},
            rego=rego_sources(tree),
        )


@pytest.mark.parametrize("env", ENVS)
def test_the_example_passes_its_policies(example: Example, env: str) -> None:
    parse_settings(example.environments[env].policies, env=env)  # valid as written
    report = example.evaluate(env, now=MONDAY_10_BERLIN)
    assert [str(r) for r in report.results] == []
    assert not report.blocked


def test_production_outside_its_window_only_warns_in_the_demo(example: Example) -> None:
    for now in (SATURDAY, CHRISTMAS_EVE_10_BERLIN):
        report = example.evaluate("production", now=now)
        assert not report.blocked
        [warning] = report.warnings
        assert warning.rule == "deployment_windows"
    assert "'year-end freeze'" in warning.message
    assert "next opens 2026-01-05T08:00:00+00:00" in warning.message  # Monday after the freeze


def test_the_example_passes_every_rule_enforced_with_its_strictest_useful_parameters(
    example: Example,
) -> None:
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
        report = example.evaluate(env, now=SATURDAY, policies=strict, rego=False)
        assert [str(r) for r in report.results] == [], env


def test_what_the_example_would_violate_if_digests_were_required(example: Example) -> None:
    policies = {"default": "off", "no_latest_tag": {"mode": "enforce", "require": "digest"}}
    report = example.evaluate("production", now=SATURDAY, policies=policies, rego=False)
    assert [(r.service, r.location) for r in report.violations] == [
        ("medianest-app", SourceLocation("base/docker-compose.yml", 12, 5)),
        ("medianest-worker", SourceLocation("base/docker-compose.yml", 52, 5)),
    ]


def test_the_team_registry_policy_guards_production_only(example: Example) -> None:
    def moved(env: str) -> DesiredStack:
        stack = example.stacks[env]
        services = dict(stack.compose["services"])
        services["medianest-worker"] = {
            **services["medianest-worker"],
            "image": "docker.io/library/busybox:1.36",
        }
        return replace(stack, compose={**stack.compose, "services": services})

    report = example.evaluate(
        "production", now=SATURDAY, policies={"default": "off"}, stack=moved("production")
    )
    [violation] = report.violations
    assert violation.rule == "rego:gitswarm.team_registry"
    assert violation.service == "medianest-worker"
    assert violation.location == SourceLocation("base/docker-compose.yml", 51, 3)
    assert "is not from the team registry 127.0.0.1:5000" in violation.message
    # a different registry given as a parameter moves the policy with it
    params = {"default": "off", "rego": {"params": {"team_registry": "registry.acme.test"}}}
    report = example.evaluate("production", now=SATURDAY, policies=params)
    assert {r.service for r in report.violations} == {"medianest-app", "medianest-worker"}
    # development may pull from anywhere
    dev = example.evaluate(
        "development", now=SATURDAY, policies={"default": "off"}, stack=moved("development")
    )
    assert not dev.blocked
