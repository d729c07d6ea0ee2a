"""Policies a commit cannot loosen for itself (policy/floor.py), pure: the floor pinned in
the agent's config and the revision deployed last, merged into the gate's verdicts.

The property that matters: whatever the commit's own settings and the layer's, the
verdict in force is never looser than either.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitswarm.errors import ConfigError, PolicyError
from gitswarm.model.config import Environment, Target
from gitswarm.model.policy import Mode, PolicyResult
from gitswarm.model.stack import DesiredStack, SourceMap
from gitswarm.policy import evaluate, parse_settings, raise_for_violations
from gitswarm.policy.floor import (
    PolicyLayer,
    combine,
    loosenings,
    modes_in_force,
    parse_floor,
    severity,
)
from gitswarm.policy.rego import evaluate_rego

NOW = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
RANK = {"off": 0, "warn": 1, "enforce": 2}
# Rules that need no parameters: any mode parses.
PLAIN = (
    "no_root_containers",
    "required_resource_limits",
    "no_privileged_containers",
    "required_security_contexts",
    "naming_conventions",
    "no_latest_tag",
    "required_healthcheck",
    "update_config_rollback",
    "host_ports_stop_first",
    "certificate_expiry",
)
CLEAN: dict[str, Any] = {
    "image": "127.0.0.1:5000/app:1.0.0",
    "user": "1000:1000",
    "read_only": True,
    "security_opt": ["no-new-privileges:true"],
    "healthcheck": {"test": ["CMD", "true"]},
    "deploy": {
        "resources": {"limits": {"cpus": "0.5", "memory": "64M"}},
        "update_config": {"failure_action": "rollback"},
    },
}
# Root on every manager: the Docker socket of the host, in a service of the stack.
ROOTKIT: dict[str, Any] = {**CLEAN, "volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}


def stack(**services: Mapping[str, Any]) -> DesiredStack:
    return DesiredStack(
        app="app",
        env="production",
        stack="app-production",
        revision="1" * 40,
        compose={"services": dict(services)},
        files=("base/docker-compose.yml",),
        source_map=SourceMap(),
    )


def env(policies: Mapping[str, Any]) -> Environment:
    return Environment(
        name="production", order=1, target=Target("local"), path="environments/production",
        policies=policies,
    )  # fmt: skip


def floor(raw: Mapping[str, Any], rego: Mapping[str, str] | None = None) -> PolicyLayer:
    return parse_floor(raw, env="production", file="agent.yml", rego_sources=rego)


modes = st.sampled_from(["enforce", "warn", "off"])
settings_maps = st.dictionaries(st.sampled_from(PLAIN), modes, max_size=len(PLAIN))


@given(own=settings_maps, pinned=settings_maps, default=st.sampled_from([None, *RANK]))
def test_the_mode_in_force_is_never_looser_than_the_commit_or_the_floor(
    own: dict[str, Mode], pinned: dict[str, Mode], default: str | None
) -> None:
    mine = parse_settings(own)
    raw: dict[str, Any] = dict(pinned) if default is None else {"default": default, **pinned}
    layer = floor(raw)
    merged = modes_in_force(mine, [layer])
    for rule, mode in merged.items():
        assert RANK[mode] >= RANK[mine.mode(rule)]
        if rule in PLAIN:
            assert RANK[mode] >= RANK[layer.settings.mode(rule)]
            assert mode == max(mine.mode(rule), layer.settings.mode(rule), key=RANK.__getitem__)


results = st.builds(
    PolicyResult,
    rule=st.sampled_from(["no_root_containers", "rego:x"]),
    mode=st.sampled_from(["enforce", "warn"]),
    status=st.sampled_from(["fail", "error", "exempt"]),
    detail=st.sampled_from(["a", "b"]),
    service=st.sampled_from([None, "web"]),
)


@given(own=st.lists(results, max_size=6), layered=st.lists(results, max_size=6))
def test_combined_results_keep_the_strictest_verdict_of_each_finding(
    own: list[PolicyResult], layered: list[PolicyResult]
) -> None:
    out = combine(own, [("pinned by the agent's config", layered)])

    def strictest(found: list[PolicyResult]) -> dict[tuple[str, str | None, str], int]:
        best: dict[tuple[str, str | None, str], int] = {}
        for r in found:
            key = (r.rule, r.service, r.detail.split(" [")[0])
            best[key] = max(best.get(key, -1), severity(r))
        return best

    merged = strictest(out)
    for key, level in {**strictest(layered), **strictest(own)}.items():
        assert merged[key] >= level
    for key, level in strictest(layered).items():
        assert merged[key] >= level
    assert any(r.blocking for r in out) == any(r.blocking for r in [*own, *layered])


def test_a_commit_cannot_switch_off_a_pinned_rule_in_the_same_commit() -> None:
    layer = floor({"no_privileged_containers": "enforce"})
    report = evaluate(
        stack(web=ROOTKIT),
        env({"no_privileged_containers": "off"}),
        rego_sources={},
        now=NOW,
        layers=[layer],
    )
    assert report.blocked
    assert report.modes["no_privileged_containers"] == "enforce"
    assert report.loosened == (
        "no_privileged_containers: enforce (pinned by the agent's config; gitswarm.yml says off)",
    )
    (violation,) = report.violations
    assert violation.rule == "no_privileged_containers"
    assert violation.detail.endswith("[pinned by the agent's config]")
    with pytest.raises(PolicyError) as raised:
        raise_for_violations(report)
    assert "no_privileged_containers: enforce (pinned by the agent's config" in str(raised.value)


def test_default_off_and_warn_cannot_loosen_a_pinned_rule_either() -> None:
    layer = floor({"no_privileged_containers": "enforce"})
    for own in ({"default": "off"}, {"no_privileged_containers": "warn"}):
        report = evaluate(stack(web=ROOTKIT), env(own), rego_sources={}, now=NOW, layers=[layer])
        assert [r.rule for r in report.violations] == ["no_privileged_containers"], own


def test_an_exemption_in_the_repo_does_not_exempt_from_a_floor_rule_one_in_the_floor_does() -> None:
    exempt = {"mode": "enforce", "exempt": {"web": "trust me"}}
    own = env({"no_privileged_containers": exempt})
    report = evaluate(
        stack(web=ROOTKIT), own, rego_sources={}, now=NOW,
        layers=[floor({"no_privileged_containers": "enforce"})],
    )  # fmt: skip
    assert report.blocked
    assert (
        "no_privileged_containers: the exemption of service 'web' does not apply (the rule is "
        "pinned by the agent's config, which does not exempt it)"
    ) in report.loosened

    operator = {"mode": "enforce", "exempt": {"web": "node agent (SEC-1)"}}
    report = evaluate(
        stack(web=ROOTKIT), own, rego_sources={}, now=NOW,
        layers=[floor({"no_privileged_containers": operator})],
    )  # fmt: skip
    assert not report.blocked
    assert report.loosened == ()


def test_the_repo_may_tighten_and_add_rules_above_the_floor() -> None:
    layer = floor({"no_privileged_containers": "warn"})
    report = evaluate(
        stack(web=ROOTKIT),
        env({"default": "off", "no_privileged_containers": "enforce"}),
        rego_sources={},
        now=NOW,
        layers=[layer],
    )
    assert [r.rule for r in report.violations] == ["no_privileged_containers"]
    assert report.loosened == ()
    # Rules the floor does not list stay the repository's: off here.
    assert report.modes["no_root_containers"] == "off"


def test_a_clean_stack_passes_under_the_floor() -> None:
    report = evaluate(
        stack(web=CLEAN), env({"default": "enforce"}), rego_sources={}, now=NOW,
        layers=[floor({"default": "enforce"})],
    )  # fmt: skip
    assert not report.blocked and report.loosened == ()


DENY_SOCKET = """package gitswarm.sock
import rego.v1
deny contains msg if {
  some name, svc in input.services
  some v in svc.volumes
  contains(v, "docker.sock")
  msg := sprintf("service %s mounts the Docker socket", [name])
}
"""


def test_a_removed_rego_file_is_still_evaluated_as_at_the_deployed_revision() -> None:
    deployed = PolicyLayer(
        "deployed",
        "aaaaaaaaaaaa, the revision deployed last",
        parse_settings({"default": "off"}),
        {"policies/sock.rego": DENY_SOCKET},
    )
    report = evaluate(
        stack(web=ROOTKIT),
        env({"default": "off"}),
        rego_sources={},
        now=NOW,
        rego=evaluate_rego,
        layers=[deployed],
    )
    assert [r.rule for r in report.violations] == ["rego:gitswarm.sock"]
    assert report.loosened == (
        "policies/sock.rego: removed by this commit; still evaluated as at aaaaaaaaaaaa, the "
        "revision deployed last until this commit is deployed",
    )


def test_loosenings_against_the_deployed_revision_name_each_change() -> None:
    old = parse_settings(
        {"no_root_containers": "enforce", "no_privileged_containers": {"mode": "enforce"}}
    )
    new = parse_settings(
        {
            "no_root_containers": "warn",
            "no_privileged_containers": {
                "mode": "enforce",
                "host_paths": ["/nothing"],
                "exempt": {"web": "why not"},
            },
        }
    )
    layer = PolicyLayer("deployed", "abc, the revision deployed last", old)
    notes = loosenings(new, layer)
    assert notes == (
        "no_root_containers: enforce (as at abc, the revision deployed last; this commit says "
        "warn, which applies only from the commit after it is deployed)",
        "no_privileged_containers: the exemption of service 'web' does not apply (not exempt "
        "at abc, the revision deployed last; applies from the commit after this one)",
        "no_privileged_containers: its settings changed; checked under those at abc, the "
        "revision deployed last too until this commit is deployed",
    )
    assert loosenings(old, layer) == ()


def test_a_bad_floor_names_the_agent_config_its_line_and_the_setting() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_floor(
            {"no_root_containers": "sometimes"},
            env="production",
            file="agent.yml",
            positions={("no_root_containers",): (4, 5)},
        )
    assert str(raised.value).startswith("invalid policy floor in the agent config")
    (problem,) = raised.value.problems
    assert (problem.file, problem.line, problem.column) == ("agent.yml", 4, 5)
    assert problem.message == (
        "policies.production.no_root_containers: mode must be enforce, warn or off, not 'sometimes'"
    )


def test_the_floor_s_own_rego_is_evaluated_whatever_the_repository_says() -> None:
    layer = floor({"rego": {"mode": "enforce"}}, {"/etc/gitswarm/policies/sock.rego": DENY_SOCKET})
    report = evaluate(
        stack(web=ROOTKIT),
        env({"default": "off", "rego": "off"}),
        rego_sources={},
        now=NOW,
        rego=evaluate_rego,
        layers=[layer],
    )
    (violation,) = report.violations
    assert violation.rule == "rego:gitswarm.sock"
    assert violation.location is not None
    assert violation.location.file == "/etc/gitswarm/policies/sock.rego"
    assert violation.detail.endswith("[pinned by the agent's config]")
    assert report.modes["rego"] == "enforce"
