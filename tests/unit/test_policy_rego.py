"""Rego policies through the gate: results, parameters, and errors that always block."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from gitswarm.errors import PolicyError
from gitswarm.model.config import Environment, Target
from gitswarm.model.policy import PolicyReport
from gitswarm.model.stack import DesiredStack, ObjectMaterial, SourceLocation, SourceMap
from gitswarm.policy import evaluate, raise_for_violations
from gitswarm.policy.rego import evaluate_rego, input_document

NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)

SOURCE_MAP = SourceMap({("services", "web"): SourceLocation("base/docker-compose.yml", 4, 3)})


def desired(
    image: str = "127.0.0.1:5000/medianest/app:1.0.0", env: str = "production"
) -> DesiredStack:
    return DesiredStack(
        app="medianest",
        env=env,
        stack=f"medianest-{env}",
        revision="c0ffee" * 6 + "abcd",
        compose={"services": {"web": {"image": image}, "worker": {"image": image}}},
        files=("base/docker-compose.yml", f"environments/{env}/docker-compose.yml"),
        source_map=SOURCE_MAP,
        objects=(
            ObjectMaterial(kind="secret", key="jwt", name="s_jwt_1", data=b"TOPSECRET-VALUE"),
        ),
    )


def environment(rego: Any = None, name: str = "production") -> Environment:
    policies: dict[str, Any] = {"default": "off"}
    if rego is not None:
        policies["rego"] = rego
    return Environment(
        name=name, order=2, target=Target("local"), path=f"environments/{name}", policies=policies
    )


def run(
    sources: Mapping[str, str],
    *,
    stack: DesiredStack | None = None,
    rego: Any = None,
    context: Mapping[str, Any] | None = None,
) -> PolicyReport:
    return evaluate(
        stack or desired(),
        environment(rego),
        rego_sources=sources,
        now=NOW,
        context=context,
        rego=evaluate_rego,
    )


REGISTRY_V1 = """\
package acme.registry

import rego.v1

deny contains {"msg": msg, "service": name} if {
    some name, svc in input.services
    not startswith(svc.image, "127.0.0.1:5000/")
    msg := sprintf("image %s is not from the team registry", [svc.image])
}

warn contains "production deploys are recorded" if input.env == "production"
"""

REGISTRY_V0 = """\
package acme.legacy

deny[msg] {
    svc := input.services[name]
    not startswith(svc.image, "127.0.0.1:5000/")
    msg := sprintf("%s: image %s is not from the team registry", [name, svc.image])
}
"""


def test_deny_and_warn_sets_become_results() -> None:
    report = run({"policies/registry.rego": REGISTRY_V1}, stack=desired("nginx:1.27"))
    assert report.blocked
    assert [r.service for r in report.violations] == ["web", "worker"]
    first = report.violations[0]
    assert first.rule == "rego:acme.registry"
    assert first.mode == "enforce"
    assert "service 'web'" in first.message and "rego:acme.registry" in first.message
    assert first.location == SourceLocation("base/docker-compose.yml", 4, 3)
    [warning] = report.warnings
    assert warning.detail == "production deploys are recorded"
    assert warning.location == SourceLocation("policies/registry.rego")


def test_a_compliant_stack_passes() -> None:
    report = run({"policies/registry.rego": REGISTRY_V1})
    assert not report.blocked
    assert len(report.warnings) == 1


def test_the_older_partial_set_syntax_works_too() -> None:
    report = run({"policies/legacy.rego": REGISTRY_V0}, stack=desired("nginx:1.27"))
    messages = sorted(r.detail for r in report.violations)
    assert messages == [
        "web: image nginx:1.27 is not from the team registry",
        "worker: image nginx:1.27 is not from the team registry",
    ]


def test_rego_in_warn_mode_turns_deny_into_warnings_and_off_skips_it() -> None:
    report = run({"policies/registry.rego": REGISTRY_V1}, stack=desired("nginx:1"), rego="warn")
    assert not report.blocked
    assert len(report.warnings) == 3
    off = run({"policies/broken.rego": "package x\ndeny contains"}, rego="off")
    assert off.results == ()


def test_exemptions_apply_to_messages_that_name_a_service() -> None:
    rego = {"mode": "enforce", "exempt": {"worker": "vendor image, mirrored weekly (OPS-7)"}}
    report = run({"policies/registry.rego": REGISTRY_V1}, stack=desired("nginx:1"), rego=rego)
    assert [r.service for r in report.violations] == ["web"]
    [exempt] = report.exemptions
    assert exempt.service == "worker"
    assert exempt.reason == "vendor image, mirrored weekly (OPS-7)"


def test_params_reach_rego_as_data() -> None:
    policy = """\
package acme.params

import rego.v1

deny contains sprintf("registry is %s", [data.gitswarm.params.registry]) if true
"""
    rego = {"params": {"registry": "registry.acme.test"}}
    [result] = run({"policies/params.rego": policy}, rego=rego).violations
    assert result.detail == "registry is registry.acme.test"


def test_the_input_document() -> None:
    policy = """\
package acme.facts

import rego.v1

warn contains sprintf("%s %s %s %s", [input.app, input.env, input.stack, input.revision]) if true
warn contains sprintf("by %s at %s", [input.commit.author, input.now]) if true
warn contains sprintf("files %v", [input.files]) if true
warn contains sprintf("compose %v", [count(input.compose.services)]) if true
"""
    report = run({"policies/facts.rego": policy}, context={"commit": {"author": "ada"}})
    details = sorted(r.detail for r in report.warnings)
    assert details == [
        "by ada at 2025-06-02T10:00:00+00:00",
        "compose 2",
        'files ["base/docker-compose.yml", "environments/production/docker-compose.yml"]',
        f"medianest production medianest-production {'c0ffee' * 6}abcd",
    ]


def test_secret_values_never_reach_the_input_document() -> None:
    document = input_document(desired(), now=NOW, window=None, context=None)
    assert "TOPSECRET" not in repr(document)
    assert set(document) == {
        "app",
        "env",
        "stack",
        "revision",
        "files",
        "compose",
        "services",
        "now",
        "window",
        "commit",
        "context",
    }


SYNTAX_ERROR = """\
package acme.broken

import rego.v1

deny contains msg if {
    msg :=
}
"""


def test_a_syntax_error_blocks_and_names_the_file_line_and_column(
    capfd: pytest.CaptureFixture[str],
) -> None:
    report = run({"policies/registry.rego": REGISTRY_V1, "policies/broken.rego": SYNTAX_ERROR})
    assert report.blocked
    [error] = report.violations
    assert error.status == "error"
    assert error.location == SourceLocation("policies/broken.rego", 6, 9)
    assert "policies/broken.rego" in error.message
    assert "Invalid assignment operator" in error.message
    # the good policy next to it was still evaluated
    assert len(report.warnings) == 1
    with pytest.raises(PolicyError) as info:
        raise_for_violations(report)
    assert info.value.reason == "PolicyViolation"
    assert str(info.value.problems[0]).startswith("policies/broken.rego:6:9: ")
    # the engine prints nothing of its own (that would corrupt --json output)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_a_syntax_error_blocks_even_when_rego_only_warns() -> None:
    report = run({"policies/broken.rego": SYNTAX_ERROR}, rego="warn")
    assert report.blocked


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('deny contains msg if { msg := sprintf("%d", [1 / 0]) }', "divide by zero"),
        (
            "x := input.app\nx := input.env\ndeny contains x if true",
            "complete rules must not produce multiple outputs",
        ),
        ('deny := "not a set"', "must be a set of messages"),
    ],
    ids=["builtin-error", "conflict", "not-a-set"],
)
def test_runtime_errors_block_and_name_the_file(body: str, words: str) -> None:
    source = f"package acme.runtime\n\nimport rego.v1\n\n{body}\n"
    report = run({"policies/runtime.rego": source})
    assert report.blocked
    [error] = report.violations
    assert error.status == "error"
    assert error.rule == "rego:acme.runtime"
    assert error.location == SourceLocation("policies/runtime.rego")
    assert words in error.message
    assert "policies/runtime.rego" in error.message


def test_the_example_policy_is_valid_rego() -> None:
    from importlib import resources

    folder = resources.files("gitswarm") / "example" / "policies"
    sources = {
        f"policies/{f.name}": f.read_text() for f in folder.iterdir() if f.name.endswith(".rego")
    }
    assert sources
    report = run(sources, stack=desired("docker.io/library/nginx:1.27"))
    assert report.blocked
    assert {r.service for r in report.violations} == {"web", "worker"}
    assert not run(sources).blocked


def test_an_undefined_function_is_refused_before_evaluation_with_its_line() -> None:
    source = "package acme.typo\n\nimport rego.v1\n\ndeny contains msg if { msg := sprnitf(1) }\n"
    [error] = run({"policies/typo.rego": source}).violations
    assert error.status == "error"
    assert error.location == SourceLocation("policies/typo.rego", 5, 31)
    assert error.detail == (
        "policy policies/typo.rego: cannot be evaluated: function sprnitf is not defined: "
        "not a rule of these policies, nor a built-in that gitswarm policies may call"
    )
