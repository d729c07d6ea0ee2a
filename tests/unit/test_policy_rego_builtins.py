"""Rego sees only ``input`` and ``data.gitswarm.params``: a built-in outside the allow-list
(the environment, the clock, the network, files, randomness) is refused before anything
is evaluated, with file, line and column, however the call is spelled or hidden.

Issue 11.1: a committed ``deny`` message with ``opa.runtime()`` carried the agent's whole
environment (its age identities) into the CLI, the store, the API and notifications.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

from gitswarm.policy.rego import (
    ALLOWED_BUILTINS,
    REFUSED_BUILTINS,
    RegoOutcome,
    evaluate_rego,
)

CANARY = "AGE-SECRET-KEY-1CANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYQQQQQQ"
REFUSED = "is not allowed in gitswarm policies: Rego sees only input and data.gitswarm.params"
RUNTIME = f"builtin opa.runtime {REFUSED}"


@pytest.fixture(autouse=True)
def canary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITSWARM_AGE_KEY_DEVELOPMENT", CANARY)


def policy(body: str, package: str = "leak") -> str:
    return f"package {package}\n\nimport rego.v1\n\n{body}\n"


def evaluate(sources: Mapping[str, str]) -> RegoOutcome:
    return evaluate_rego(sources, {"app": "shop", "x": 1}, {"team": "ops"})


def refused(outcome: RegoOutcome) -> list[tuple[str | None, int | None, int | None, str]]:
    assert outcome.messages == []
    return [(f.file, f.line, f.column, f.message) for f in outcome.failures]


def test_opa_runtime_in_a_deny_message_is_refused_with_file_line_and_column() -> None:
    source = policy('deny contains msg if {\n\tmsg := sprintf("%v", [opa.runtime().env])\n}')
    outcome = evaluate({"policies/leak.rego": source})
    assert refused(outcome) == [("policies/leak.rego", 6, 24, RUNTIME)]
    assert CANARY not in repr(outcome)


# Ways an attacker with push access might try to reach the environment anyway. Each
# (body, line, column) is refused at its call; the line numbers count the 4 lines of
# `policy()`'s header.
HIDDEN = {
    "spaces around the dot": ('deny contains m if { m := sprintf("%v", [opa . runtime()]) }', 5),
    "inside with": ("deny contains m if { m := input.x with input.x as opa.runtime() }", 5),
    "in print()": ('deny contains "x" if { print(opa.runtime()) }', 5),
    "in a helper rule": (
        'env := opa.runtime().env\ndeny contains m if { m := sprintf("%v", [env]) }',
        5,
    ),
    "in a function": (
        'leak(x) := opa.runtime().env[x]\ndeny contains m if { m := leak("HOME") }',
        5,
    ),
    "after a comment that names it": (
        "deny contains m if {\n  # opa.runtime() is refused\n"
        '  m := sprintf("%v", [opa.runtime()])\n}',
        7,
    ),
    "in an else branch": (
        'x := 1 if false else := opa.runtime()\ndeny contains m if { m := sprintf("%v", [x]) }',
        5,
    ),
    "in every": ('deny contains "m" if { every k, v in opa.runtime().env { k != v } }', 5),
    "in a default's twin": (
        'default d := "x"\nd := opa.runtime()\ndeny contains m if { m := sprintf("%v", [d]) }',
        6,
    ),
    "in a rule nothing reads": ('unused := opa.runtime()\ndeny contains "ok" if true', 5),
}


@pytest.mark.parametrize(("body", "line"), list(HIDDEN.values()), ids=list(HIDDEN))
def test_a_hidden_call_is_refused_at_its_line(body: str, line: int) -> None:
    outcome = evaluate({"policies/leak.rego": policy(body)})
    [(file, at, column, message)] = refused(outcome)
    assert (file, at, message) == ("policies/leak.rego", line, RUNTIME)
    source = policy(body).splitlines()[line - 1]
    assert source[column - 1 :].replace(" ", "").startswith("opa.runtime(")
    assert CANARY not in repr(outcome)


def test_a_call_from_another_package_is_refused_in_its_own_file() -> None:
    sources = {
        "policies/a.rego": policy('deny contains m if { m := sprintf("%v", [data.b.env]) }', "a"),
        "policies/b.rego": policy("env := opa.runtime().env", "b"),
    }
    outcome = evaluate(sources)
    assert refused(outcome) == [("policies/b.rego", 5, 8, RUNTIME)]


def test_an_import_alias_does_not_reach_the_builtin() -> None:
    body = 'import data.x as opa\ndeny contains m if { m := sprintf("%v", [opa.runtime()]) }'
    outcome = evaluate({"policies/leak.rego": policy(body)})
    assert refused(outcome) == [
        (
            "policies/leak.rego",
            6,
            42,
            "function data.x.runtime is not defined: not a rule of these policies, nor a "
            "built-in that gitswarm policies may call",
        )
    ]


@pytest.mark.parametrize(
    "body",
    [
        'deny contains m if { m := "opa.runtime() and time.now_ns() are only text here" }',
        '# opa.runtime()\ndeny contains m if { m := "a comment is no call" }',
        'deny contains m if { some g; g := opa.runtime; m := sprintf("%v", [g]) }',
    ],
    ids=["in a string", "in a comment", "as a bare reference"],
)
def test_naming_the_builtin_without_calling_it_calls_nothing(body: str) -> None:
    outcome = evaluate({"policies/leak.rego": policy(body)})
    assert outcome.failures == []
    assert CANARY not in repr(outcome)
    assert "env" not in " ".join(m.message for m in outcome.messages)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        ("time.now_ns()", "time.now_ns"),
        ('time.date([0, "Europe/Paris"])', "time.date"),
        ('time.format([0, "Local"])', "time.format"),
        ('http.send({"method": "GET", "url": "http://169.254.169.254/"})', "http.send"),
        ('net.lookup_ip_addr("example.com")', "net.lookup_ip_addr"),
        ('net.cidr_contains("10.0.0.0/8", "10.1.2.3")', "net.cidr_contains"),
        ('rand.intn("x", 10)', "rand.intn"),
        ('uuid.rfc4122("x")', "uuid.rfc4122"),
        ('io.jwt.decode("a.b.c")', "io.jwt.decode"),
        ('crypto.x509.parse_certificates("x")', "crypto.x509.parse_certificates"),
        ("providers.aws.sign_req({}, {}, 0)", "providers.aws.sign_req"),
        ('rego.parse_module("x.rego", "package x")', "rego.parse_module"),
    ],
)
def test_every_impure_builtin_is_refused_with_its_name(call: str, name: str) -> None:
    source = policy(f'deny contains m if {{ m := sprintf("%v", [{call}]) }}')
    [(file, line, column, message)] = refused(evaluate({"policies/impure.rego": source}))
    assert (file, line, column) == ("policies/impure.rego", 5, 42)
    expected = f"builtin {name} {REFUSED}"
    if name.startswith("time."):
        expected += " (the evaluation's clock is input.now, UTC)"
    assert message == expected
    assert name in REFUSED_BUILTINS and name not in ALLOWED_BUILTINS


def test_nothing_is_evaluated_when_any_policy_calls_a_refused_builtin() -> None:
    sources = {
        "policies/good.rego": policy('deny contains "good policy ran" if true', "good"),
        "policies/bad.rego": policy("deny contains m if { m := time.now_ns() }", "bad"),
    }
    assert refused(evaluate(sources)) == [
        (
            "policies/bad.rego",
            5,
            27,
            f"builtin time.now_ns {REFUSED} (the evaluation's clock is input.now, UTC)",
        )
    ]


ORDINARY = """\
deny contains {"msg": msg, "service": name} if {
\tsome name, svc in input.services
\tnot startswith(object.get(svc, "image", ""), concat("", [data.gitswarm.params.registry, "/"]))
\tmsg := $"service {name}: image {svc.image} is not from {data.gitswarm.params.registry}"
}

warn contains msg if {
\tcommitted := time.parse_rfc3339_ns(input.commit.time)
\tnow := time.parse_rfc3339_ns(input.now)
\tnow - committed > time.parse_duration_ns("720h")
\tmsg := sprintf("commit is %v days old", [floor((now - committed) / (24 * 3600 * 1000000000))])
}

warn contains msg if {
\tsome name, svc in input.services
\tregex.match(`:latest$`, svc.image)
\t"web" in object.keys(input.services)
\tcount([p | some p in svc.ports; p.published < 1024]) >= 0
\tprint("checked", name)
\tmsg := sprintf("%s uses a latest tag (%s)", [name, trim_space(svc.image)])
}
"""


def test_ordinary_policies_keep_working() -> None:
    document = {
        "services": {"web": {"image": "docker.io/nginx:latest", "ports": []}},
        "now": "2025-06-02T10:00:00+00:00",
        "commit": {"time": "2025-01-01T10:00:00+00:00"},
    }
    outcome = evaluate_rego(
        {"policies/ordinary.rego": policy(ORDINARY, "acme.ordinary")},
        document,
        {"registry": "registry.acme.test"},
    )
    assert outcome.failures == []
    assert sorted((m.kind, m.message, m.service) for m in outcome.messages) == [
        (
            "deny",
            "service web: image docker.io/nginx:latest is not from registry.acme.test",
            "web",
        ),
        ("warn", "commit is 152 days old", None),
        ("warn", "web uses a latest tag (docker.io/nginx:latest)", None),
    ]


def test_the_allow_and_refuse_lists_do_not_overlap_and_the_canary_is_set() -> None:
    assert not ALLOWED_BUILTINS & REFUSED_BUILTINS
    assert {"opa.runtime", "time.now_ns", "http.send", "rand.intn"} <= REFUSED_BUILTINS
    assert os.environ["GITSWARM_AGE_KEY_DEVELOPMENT"] == CANARY
