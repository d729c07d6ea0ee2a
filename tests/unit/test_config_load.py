"""gitswarm.yml and applications/*.yml: the repository model, every problem at file:line."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from gitswarm.errors import ConfigError
from gitswarm.repo import load_config
from gitswarm.repo.config import NAME_PATTERN
from gitswarm.source.tree import GitTree
from tests.unit.test_render_trees import MemoryTree, make_git_repo

RECIPIENT = "age1c6ws8apf89vfgnkec6nm8gjg23ksntmlkrpd5xftamu4m8fkzf6qfd95xa"

GOOD = f"""\
project: shop
application:
  name: web
  stack: "shop-{{env}}"
targets:
  remote: {{}}
environments:
  dev:
    sync: {{prune: true, self_heal: true}}
    secrets: {{recipients: ["{RECIPIENT}"]}}
  prod:
    target: remote
    branch: release
    sync: {{automated: false, health_timeout: 60, resolve_image: always}}
    verify: {{mode: ssh, allowed_signers: /etc/signers}}
    policies:
      no_latest_tag: enforce
      allowed_registries: {{mode: warn, registries: [ghcr.io]}}
    promotion:
      from: dev
      approvals: 2
"""


def _load(files: dict[str, str]) -> object:
    return load_config(MemoryTree(files))


def _problems(files: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(MemoryTree(files))
    assert info.value.exit_code == 2
    assert info.value.reason == "ConfigInvalid"
    return [str(p) for p in info.value.problems]


def test_a_full_configuration() -> None:
    config = load_config(MemoryTree({"gitswarm.yml": GOOD}))
    assert config.project == "shop"
    assert [(e.name, e.order) for e in config.environments] == [("dev", 0), ("prod", 1)]
    dev, prod = config.environments
    assert dev.target.name == "local" and dev.target.url is None
    assert dev.sync.prune and dev.sync.self_heal and dev.sync.automated
    assert dev.secrets.recipients == (RECIPIENT,)
    assert prod.target.name == "remote" and prod.target.url is None  # the operator's
    assert prod.branch == "release"
    assert prod.sync.automated is False and prod.sync.health_timeout == 60.0
    assert prod.sync.resolve_image == "always"
    assert prod.verify is not None and prod.verify.mode == "ssh"
    assert prod.policies["allowed_registries"] == {"mode": "warn", "registries": ["ghcr.io"]}
    assert prod.promotion == {"from": "dev", "approvals": 2}
    assert prod.source == "gitswarm.yml"
    assert prod.positions[("policies", "no_latest_tag")] == (17, 7)
    (app,) = config.applications
    assert app.name == "web" and app.stack_name("prod") == "shop-prod"
    assert app.files == ("base/docker-compose.yml", "environments/{env}/docker-compose.yml")
    assert app.environments == ("dev", "prod")
    assert config.sync_policy(app, prod) == prod.sync


def test_applications_folder() -> None:
    config = load_config(
        MemoryTree(
            {
                "gitswarm.yml": "project: shop\nenvironments:\n  dev: {}\n  prod: {}\n",
                "applications/monitoring.yml": (
                    "files: [monitoring/stack.yml]\nenvironments: [prod]\n"
                    "sync:\n  prod: {prune: true}\n"
                ),
                "applications/README.md": "ignored",
            }
        )
    )
    (app,) = config.applications
    assert app.name == "monitoring" and app.stack_name("prod") == "monitoring-prod"
    assert app.source == "applications/monitoring.yml"
    assert app.environments == ("prod",)
    assert app.sync["prod"].prune is True
    assert config.apps_for("dev") == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "project: shop\nenvironments:\n  dev:\n    sync: {prune: yes}\n",
            "gitswarm.yml:4:12: environments.dev.sync.prune must be a boolean",
        ),
        (
            "project: shop\nenvironments:\n  dev:\n    syncc: {}\n",
            "gitswarm.yml:4:5: unknown key 'syncc' in environments.dev",
        ),
        ("project: shop\nenvironment: {}\n", "gitswarm.yml:2:1: unknown key 'environment'"),
        (
            "project: shop\nenvironments:\n  dev/x: {}\n",
            "gitswarm.yml:3:3: environments.dev/x: environment name 'dev/x' is not valid",
        ),
        (
            "project: shop\nenvironments:\n  '..': {}\n",
            "gitswarm.yml:3:3: environments...: environment name '..' is not valid",
        ),
        (
            "project: shop\napplication: {name: ../x}\nenvironments:\n  dev: {}\n",
            "gitswarm.yml:2:15: application.name: application name '../x' is not valid",
        ),
        (
            "project: Shop/1\nenvironments:\n  dev: {}\n",
            "gitswarm.yml:1:1: project: project name 'Shop/1' is not valid",
        ),
        (
            "project: shop\nenvironments:\n  dev: {target: mars}\n",
            "gitswarm.yml:3:9: environment 'dev' deploys to target 'mars', which is not declared",
        ),
        (
            "project: shop\nenvironments:\n  dev: {secrets: {recipients: [nope]}}\n",
            "'nope' is not an age public key",
        ),
        (
            "project: shop\napplication: {environments: [dev, qa]}\nenvironments:\n  dev: {}\n",
            "gitswarm.yml:2:35: application 'shop' lists environment 'qa'",
        ),
        ("project: shop\nenvironments: {}\n", "gitswarm.yml:2:1: environments"),
        ("project: [shop\n", "gitswarm.yml:2:1: "),
        ("- project\n", "gitswarm.yml:1:1: must be a mapping of settings"),
    ],
)
def test_problems_name_file_line_and_rule(text: str, expected: str) -> None:
    problems = _problems({"gitswarm.yml": text})
    assert any(expected in p for p in problems), problems


def test_every_problem_at_once() -> None:
    text = "project: shop\nenvironments:\n  dev: {sync: {prune: 1}, bogus: 2}\n  Qa: {}\n"
    problems = _problems({"gitswarm.yml": text})
    assert len(problems) == 3, problems


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"applications/bad.name.yml": "files: [a.yml]\n"},
            "applications/bad.name.yml: application name 'bad.name'",
        ),
        ({"applications/a.yml": "filez: [a.yml]\n"}, "applications/a.yml:1:1: unknown key 'filez'"),
        (
            {"applications/a.yml": "environments: [prod]\n"},
            "applications/a.yml:1:16: application 'a' lists environment 'prod'",
        ),
        ({"applications/shop.yml": "stack: other\n"}, "application 'shop' is declared twice"),
        ({"applications/a.yml": "sync: {qa: {prune: true}}\n"}, "sync policy for environment 'qa'"),
        ({"applications/a.yml": "stack: 'x/{env}'\n"}, "applications/a.yml:1:1: stack"),
    ],
)
def test_application_file_problems(files: dict[str, str], expected: str) -> None:
    base = {"gitswarm.yml": "project: shop\napplication: {}\nenvironments:\n  dev: {}\n"}
    problems = _problems({**base, **files})
    assert any(expected in p for p in problems), problems


def test_no_application_at_all() -> None:
    problems = _problems({"gitswarm.yml": "project: shop\nenvironments:\n  dev: {}\n"})
    assert "no application" in problems[0]


def test_missing_gitswarm_yml() -> None:
    with pytest.raises(ConfigError, match=r"gitswarm\.yml not found"):
        load_config(MemoryTree({"README.md": "x"}))


def test_the_schema_and_the_name_rule_agree() -> None:
    text = resources.files("gitswarm.repo").joinpath("gitswarm_schema.json").read_text()
    assert json.loads(text)["definitions"]["name"]["pattern"] == NAME_PATTERN.pattern


def test_loads_from_a_real_commit(tmp_path: Path) -> None:
    make_git_repo(tmp_path / "r", {"gitswarm.yml": GOOD})
    config = load_config(GitTree(tmp_path / "r", "main"))
    assert [e.name for e in config.environments] == ["dev", "prod"]


@pytest.mark.parametrize(
    ("spec", "key", "line"),
    [
        ("\n    url: tcp://10.0.0.5:2376", "url", 5),
        ("\n    tls: {ca: /etc/ca.pem, cert: /etc/cert.pem, key: /etc/key.pem}", "tls", 5),
        ("\n    url: tcp://10.0.0.5:2376\n    tls:\n      cert: /etc/x", "tls", 6),
    ],
)
def test_target_endpoints_and_credentials_are_refused_where_they_are_written(
    spec: str, key: str, line: int
) -> None:
    """A pusher must not choose which host file the agent reads as a certificate, nor
    which engine gets the environment's secrets (issue 17): the retired url/tls keys are
    refused at their line, saying where they live now."""
    text = (
        "project: shop\napplication: {name: web}\ntargets:\n  prod:"
        + spec
        + "\nenvironments:\n  prod: {target: prod}\n"
    )
    problems = _problems({"gitswarm.yml": text})
    assert len(problems) >= 1
    first = next(p for p in problems if f"targets.prod.{key}" in p)
    assert first.startswith(f"gitswarm.yml:{line}:")
    assert "gitswarm.yml only names targets" in first
    config = "`targets: {prod: {url: ..., tls: {ca: ..., cert: ..., key: ...}}}`"
    assert f"in the agent config: {config}" in first
    assert "$GITSWARM_CONFIG" in first and first.endswith("[config-schema]")
