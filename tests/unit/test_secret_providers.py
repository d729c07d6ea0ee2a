"""External secret providers (issue 17): the operator's command, the repository's key.

A compose file references ``x-gitswarm-provider: {name, key}``; the agent config says
what ``name`` runs. What whoever can push tried: a key that looks like an option or
climbs a path, a provider of another environment, a provider that does not exist. What
a bad provider does: hang, print too much, print nothing, fail. Each is a clean error at
the reference's line; no value is ever in a message, a repr or the rendered file. The
real rotation on a swarm: tests/integration/test_secret_provider_rotation.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from gitswarm.errors import ConfigError, RenderError, SecretError
from gitswarm.model.stack import ProviderRef
from gitswarm.policy.rego import evaluate_rego
from gitswarm.reconcile.rendering import StackRenderer
from gitswarm.render import render_stack, to_yaml
from gitswarm.render.secrets import Identity
from gitswarm.render.stack import ProviderValuesNeeded
from gitswarm.repo import load_config
from gitswarm.source.providers import Provider, ProviderSet, parse_providers, run_provider
from tests.unit.test_render_trees import MemoryTree

DEV = Identity.generate()
PROVIDER_LINE = 8  # of x-gitswarm-provider in BASE


def _files(key: str = "shop/db", name: str = "vault") -> dict[str, str]:
    base = (
        "services:\n"
        "  api:\n"
        "    image: registry.local/api:1\n"
        "    secrets: [db]\n"
        "secrets:\n"
        "  db:\n"
        "    labels: {team: shop}\n"
        f"    x-gitswarm-provider: {{name: {name}, key: '{key}'}}\n"
    )
    return {
        "gitswarm.yml": (
            "project: shop\napplication: {name: web, stack: 'shop-{env}'}\n"
            f"environments:\n  dev: {{secrets: {{recipients: ['{DEV.recipient}']}}}}\n"
        ),
        "base/docker-compose.yml": base,
        "environments/dev/docker-compose.yml": "services: {}\n",
    }


def _render(files: dict[str, str], provided: dict[tuple[str, str], bytes] | None) -> object:
    tree = MemoryTree(files)
    return render_stack(tree, load_config(tree), "web", "dev", DEV, provided=provided)


def test_the_value_is_named_by_a_keyed_hash_and_never_rendered() -> None:
    one = _render(_files(), {("vault", "shop/db"): b"s3cret-one"})
    two = _render(_files(), {("vault", "shop/db"): b"s3cret-two"})
    (secret,) = one.objects  # type: ignore[attr-defined]
    (rotated,) = two.objects  # type: ignore[attr-defined]
    assert secret.name.startswith("shop-dev_db_") and rotated.name != secret.name
    assert secret.data == b"s3cret-one" and "s3cret" not in repr(secret)
    assert secret.labels["io.gitswarm.provider"] == "vault"
    assert secret.labels["team"] == "shop"
    text = to_yaml(one)  # type: ignore[arg-type]
    assert "s3cret" not in text and "x-gitswarm-provider" not in text
    assert f"name: {secret.name}" in text and "external: true" in text


def test_without_values_the_pre_commit_render_names_a_placeholder() -> None:
    desired = _render(_files(), None)
    (secret,) = desired.objects  # type: ignore[attr-defined]
    assert secret.name == "shop-dev_db_unresolved" and secret.data == b""


def test_the_renderer_resolves_what_the_render_asks_for() -> None:
    tree = MemoryTree(_files())
    config = load_config(tree)
    asked: list[tuple[str, ProviderRef]] = []

    def providers(env: object, refs: object) -> dict[tuple[str, str], bytes]:
        asked.extend((env.name, r) for r in refs)  # type: ignore[attr-defined]
        return {("vault", "shop/db"): b"value"}

    renderer = StackRenderer(
        tree,
        config,
        lambda e: (DEV, None),  # type: ignore[arg-type,return-value]
        lambda s: None,
        evaluate_rego,
        providers,  # type: ignore[arg-type]
    )
    desired = renderer.render("web", config.environment("dev"))
    assert [(env, r.provider, r.key, r.secret, r.file, r.line) for env, r in asked] == [
        ("dev", "vault", "shop/db", "db", "base/docker-compose.yml", PROVIDER_LINE)
    ]
    assert desired.objects[0].data == b"value"


def test_a_stack_with_other_problems_runs_no_provider() -> None:
    files = _files()
    files["base/docker-compose.yml"] += "  other: {file: ./missing.age}\n"
    with pytest.raises(RenderError) as caught:
        _render(files, {})  # the problem, not ProviderValuesNeeded
    assert not isinstance(caught.value, ProviderValuesNeeded)
    with pytest.raises(ProviderValuesNeeded):
        _render(_files(), {})


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("--output=/etc/passwd", "a provider key is 1-200 letters"),
        ("-field=x", "a provider key is 1-200 letters"),
        ("shop/../prod/db", "a provider key has no empty, '.' or '..' path segments"),
        ("shop//db", "a provider key has no empty, '.' or '..' path segments"),
        ("shop/db; rm -rf /", "a provider key is 1-200 letters"),
        ("op://prod/db", "a provider key is 1-200 letters"),
        ("`id`", "a provider key is 1-200 letters"),
    ],
)
def test_a_key_that_is_not_a_plain_name_is_refused_at_its_line(key: str, why: str) -> None:
    with pytest.raises(SecretError) as caught:
        _render(_files(key=key), {})
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.rule) == ("base/docker-compose.yml", 8, "secret")
    assert problem.message.startswith("secret db: " + why)


def test_a_commit_cannot_give_a_provider_a_command() -> None:
    """Whoever can push names a provider and a key, nothing else: an argv in the compose
    file, or a providers: block in gitswarm.yml, is refused at its line."""
    files = _files()
    files["base/docker-compose.yml"] = files["base/docker-compose.yml"].replace(
        "key: 'shop/db'}", "key: 'shop/db', argv: [/bin/sh, -c, id]}"
    )
    with pytest.raises(SecretError) as caught:
        _render(files, {("vault", "shop/db"): b"value"})
    (problem,) = caught.value.problems
    assert str(problem) == (
        "base/docker-compose.yml:8:5: secret db: x-gitswarm-provider takes only name and key, "
        "not argv: what a provider runs is the operator's, in the agent config's providers:; "
        "write `x-gitswarm-provider: {name: PROVIDER, key: KEY}` [secret]"
    )
    files = _files()
    files["gitswarm.yml"] += "providers:\n  evil: {argv: [/bin/sh, -c, id], environments: [dev]}\n"
    with pytest.raises(ConfigError) as refused:
        load_config(MemoryTree(files))
    assert "gitswarm.yml:5:1: unknown key 'providers' in the top level" in refused.value.message


# --- running the operator's command -----------------------------------------------------


def _provider(tmp_path: Path, body: str, **kw: object) -> Provider:
    script = tmp_path / "provider.py"
    script.write_text("import os, sys, time\n" + body)
    return Provider(
        name="vault",
        argv=(sys.executable, str(script), "--key={key}", "{env}"),
        environments=("dev",),
        **kw,  # type: ignore[arg-type]
    )


def test_the_key_is_one_argv_element_and_no_shell_runs(tmp_path: Path) -> None:
    provider = _provider(tmp_path, "print(repr(sys.argv[1:]))\n")
    assert run_provider(provider, "dev", "shop/db") == b"['--key=shop/db', 'dev']"


def test_the_command_gets_only_the_variables_it_is_given(tmp_path: Path) -> None:
    provider = _provider(
        tmp_path,
        "print(sorted(k for k in os.environ if k not in ('PWD', 'SHLVL', '_', 'LC_CTYPE')))\n",
        pass_env=("VAULT_TOKEN",),
        env={"VAULT_ADDR": "https://vault"},
    )
    environ = {
        "PATH": "/usr/bin:/bin",
        "VAULT_TOKEN": "t",
        "GITSWARM_AGE_KEY_DEV": "AGE-SECRET-KEY-1...",
        "GITSWARM_WEBHOOK": "x",
    }
    out = run_provider(provider, "dev", "k", environ)
    assert out == b"['PATH', 'VAULT_ADDR', 'VAULT_TOKEN']"


@pytest.mark.parametrize(
    ("body", "kw", "message"),
    [
        ("time.sleep(30)\n", {"timeout": 0.5}, "did not finish within 0.5s (killed)"),
        ("sys.stdout.write('x' * 5000)\n", {"max_bytes": 100}, "printed more than max_bytes"),
        ("pass\n", {}, "printed nothing; Swarm needs a value of at least one byte"),
        (
            "print('the-value'); sys.stderr.write('no such secret\\n'); sys.exit(2)\n",
            {},
            "exited with 2: no such secret",
        ),
    ],
)
def test_a_bad_provider_is_a_clean_error_without_the_value(
    tmp_path: Path, body: str, kw: dict[str, object], message: str
) -> None:
    provider = _provider(tmp_path, body, **kw)
    started = time.monotonic()
    with pytest.raises(SecretError) as caught:
        run_provider(provider, "dev", "shop/db")
    assert time.monotonic() - started < 10
    assert caught.value.reason == "SecretProviderFailed"
    assert caught.value.message.startswith("provider 'vault' (key 'shop/db') ")
    assert message in caught.value.message
    assert "the-value" not in caught.value.message


def test_a_hung_provider_s_children_are_killed_too(tmp_path: Path) -> None:
    marker = tmp_path / "child-alive"
    child = tmp_path / "child.py"
    child.write_text(f"import time\ntime.sleep(3)\nopen({str(marker)!r}, 'w').write('x')\n")
    body = (
        f"import subprocess\nsubprocess.Popen([sys.executable, {str(child)!r}])\ntime.sleep(30)\n"
    )
    with pytest.raises(SecretError, match="killed"):
        run_provider(_provider(tmp_path, body, timeout=0.5), "dev", "k")
    time.sleep(3.5)
    assert not marker.exists()


def test_one_environment_cannot_use_another_s_provider(tmp_path: Path) -> None:
    providers = ProviderSet(
        {"vault": _provider(tmp_path, "print('x')\n")}, source="/etc/gitswarm/agent.yml"
    )
    ref = ProviderRef("vault", "prod/db", "db", "base/docker-compose.yml", 8, 5)
    with pytest.raises(SecretError) as caught:
        providers.resolve("prod", [ref])
    assert caught.value.reason == "SecretProviderRefused"
    (problem,) = caught.value.problems
    assert str(problem) == (
        "base/docker-compose.yml:8:5: secret db: environment 'prod' may not use provider "
        "'vault' (it serves dev; providers.vault.environments in /etc/gitswarm/agent.yml): "
        "one environment never reads another's secrets [secret-provider]"
    )
    missing = ProviderRef("nope", "k", "db", "base/docker-compose.yml", 8, 5)
    with pytest.raises(SecretError, match="provider 'nope' is not defined in"):
        providers.resolve("dev", [missing])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"argv": ["{key}"], "environments": ["dev"]}, "argv[0]: the program is fixed"),
        ({"argv": ["true", "{key!r}"], "environments": ["dev"]}, "the only placeholders are"),
        ({"argv": ["true", "{other}"], "environments": ["dev"]}, "the only placeholders are"),
        ({"argv": ["true"]}, "environments: is required"),
        ({"argv": "vault kv get", "environments": ["dev"]}, "argv must be a list of strings"),
        ({"argv": ["no-such-program-here"], "environments": ["dev"]}, "is not an executable"),
        (
            {"argv": ["true"], "environments": ["dev"], "pass_env": ["GITSWARM_AGE_KEY_DEV"]},
            "GITSWARM_AGE_KEY_DEV is gitswarm's own",
        ),
        ({"argv": ["true"], "environments": ["dev"], "timeout": 0}, "timeout must be more"),
        ({"argv": ["true"], "environments": ["dev"], "shell": True}, "unknown key 'shell'"),
    ],
)
def test_operator_mistakes_in_providers_stop_the_agent_at_start(
    spec: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_providers({"vault": spec}, "agent.yml:3", lines={"vault": 4}, path=Path("a.yml"))
    assert caught.value.message.startswith("a.yml:4: providers.vault")
    assert message in caught.value.message


def test_a_provider_command_is_found_on_path_when_loaded() -> None:
    providers = parse_providers(
        {"vault": {"argv": ["true", "{key}"], "environments": ["dev"]}}, "agent.yml:1"
    )
    assert Path(providers.providers["vault"].argv[0]).is_absolute()
