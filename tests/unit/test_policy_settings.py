"""The `policies:` block of gitswarm.yml: defaults, short and long forms, clear errors."""

from __future__ import annotations

from typing import Any

import pytest

from gitswarm.errors import ConfigError
from gitswarm.policy import RULES, parse_settings
from gitswarm.repo.yamlsrc import parse_yaml


def problems(raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, env="production")
    assert info.value.reason == "ConfigInvalid"
    return [str(p) for p in info.value.problems]


def test_defaults_warn_except_rules_that_need_parameters_and_rego_enforces() -> None:
    modes = parse_settings({}).modes
    assert modes.pop("rego") == "enforce"
    needing = ("required_labels", "allowed_registries", "deployment_windows", "secret_max_age")
    for name in needing:
        assert modes.pop(name) == "off"
    assert set(modes.values()) == {"warn"}  # certificate_expiry among them: warn by default
    assert set(modes) | set(needing) == set(RULES)


def test_default_mode_can_be_changed() -> None:
    settings = parse_settings({"default": "enforce", "required_healthcheck": "off"})
    assert settings.mode("no_root_containers") == "enforce"
    assert settings.mode("required_healthcheck") == "off"
    assert settings.mode("allowed_registries") == "off"  # still needs its parameters
    assert settings.mode("rego") == "enforce"


def test_short_and_long_forms() -> None:
    settings = parse_settings(
        {
            "no_root_containers": "enforce",
            "no_privileged_containers": {
                "mode": "enforce",
                "exempt": {"node-exporter": "reads /proc for metrics"},
                "capabilities": ["cap_sys_admin", "NET_ADMIN"],
            },
            "required_resource_limits": {"reservations": True},  # mode: the default
            "required_labels": {
                "mode": "enforce",
                "labels": {"team": "^(web|data)$", "tier": None},
            },
            "no_latest_tag": {"mode": "enforce", "require": "version"},
            "allowed_registries": {"mode": "enforce", "registries": ["GHCR.io/acme/"]},
            "rego": {"mode": "warn", "params": {"team_registry": "127.0.0.1:5000"}},
        }
    )
    assert settings.mode("no_root_containers") == "enforce"
    rule = settings.rule("no_privileged_containers")
    assert rule.exempt == {"node-exporter": "reads /proc for metrics"}
    assert settings.privileged.capabilities == frozenset({"SYS_ADMIN", "NET_ADMIN"})
    assert settings.mode("required_resource_limits") == "warn"
    assert settings.resources.reservations is True
    assert set(settings.labels.labels) == {"team", "tier"}
    assert settings.images.require == "version"
    assert settings.registries.registries == ("ghcr.io/acme",)
    assert settings.rego.params == {"team_registry": "127.0.0.1:5000"}
    assert settings.mode("rego") == "warn"


def test_yaml_1_1_off_is_read_as_off() -> None:
    assert parse_settings({"no_root_containers": False}).mode("no_root_containers") == "off"


def test_unknown_rule_names_suggest_the_closest() -> None:
    [problem] = problems({"no_root_container": "enforce"})
    assert "environments.production.policies.no_root_container" in problem
    assert "did you mean no_root_containers?" in problem
    assert problem.startswith("gitswarm.yml: ")


def test_bad_modes() -> None:
    found = problems({"no_root_containers": "enforced", "required_healthcheck": {"mode": True}})
    assert len(found) == 2
    assert "mode must be enforce, warn or off, not 'enforced'" in found[0]
    assert "required_healthcheck.mode" in found[1]


def test_exemptions_need_a_reason() -> None:
    found = problems(
        {
            "no_root_containers": {"mode": "enforce", "exempt": {"web": "", "db": None}},
            "required_healthcheck": {"mode": "enforce", "exempt": ["worker"]},
        }
    )
    assert len(found) == 3
    assert "no_root_containers.exempt.web: an exemption needs a reason" in found[0]
    assert "no_root_containers.exempt.db" in found[1]
    assert 'exempt: {web: "why"}' in found[2]


def test_rules_without_their_parameters_are_errors() -> None:
    found = problems(
        {
            "required_labels": "enforce",
            "allowed_registries": {"mode": "warn"},
            "deployment_windows": "enforce",
        }
    )
    assert len(found) == 3
    assert "required_labels: needs the labels" in found[0]
    assert "allowed_registries: needs the registries" in found[1]
    assert "deployment_windows: needs allow and/or deny windows" in found[2]


def test_unknown_settings_and_bad_parameters() -> None:
    found = problems(
        {
            "no_root_containers": {"mode": "enforce", "allow_root": True},
            "naming_conventions": {"services": "([a-z"},
            "no_latest_tag": {"require": "semver"},
            "required_security_contexts": {"read_only": "yes"},
            "required_labels": {"mode": "enforce", "labels": ["team"], "where": "pod"},
            "no_privileged_containers": {"host_paths": ["var/run"]},
            "deployment_windows": {"exempt": {"web": "x"}, "allow": ["Mon 09:00-10:00"]},
            "rego": {"params": ["x"]},
        }
    )
    text = "\n".join(found)
    assert "no_root_containers.allow_root: unknown setting (known: mode, exempt)" in text
    assert "bad regular expression '([a-z'" in text
    assert "must be tag, version or digest, not 'semver'" in text
    assert "read_only: must be true or false" in text
    assert "where: must be service, container or either" in text
    assert "'var/run' is not an absolute path" in text
    assert "there are no per-service exemptions" in text
    assert "it becomes data.gitswarm.params" in text
    assert len(found) == 8


def test_not_a_mapping() -> None:
    [problem] = problems(["no_root_containers"])
    assert "must be a mapping of rule names to modes" in problem


GITSWARM_YML = """\
environments:
  production:
    policies:
      no_root_containers: enforce
      required_healthcheck: enforced
      no_privileged_containers:
        mode: enforce
        exempt:
          node-exporter: ""
      deployment_windows:
        mode: enforce
        allow:
          - Mon-Thu 09:00-16:00
          - Mox 10:00-12:00
"""


def test_errors_carry_the_line_column_and_rule_in_gitswarm_yml() -> None:
    doc = parse_yaml(GITSWARM_YML, "gitswarm.yml")
    prefix = ("environments", "production", "policies")
    positions = {p[3:]: where for p, where in doc.positions.items() if p[:3] == prefix}
    raw = doc.data["environments"]["production"]["policies"]
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, env="production", positions=positions)
    found = {p.message.split(":")[0]: (p.line, p.column, p.rule) for p in info.value.problems}
    assert found == {
        "environments.production.policies.required_healthcheck": (5, 7, "required_healthcheck"),
        "environments.production.policies.no_privileged_containers.exempt.node-exporter": (
            9,
            11,
            "no_privileged_containers",
        ),
        "environments.production.policies.deployment_windows.allow.1": (
            14,
            13,
            "deployment_windows",
        ),
    }
    assert "gitswarm.yml:5:7: " in str(info.value)
