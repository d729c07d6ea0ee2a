"""A stack of one environment cannot reach into another's (issue 11, point 3).

Whoever can push tried, from development's overlay: declaring production's
content-addressed secret (``shop-prod_token_<hash>``) as external, in other spellings
(upper case, the key as the name, the legacy ``external: {name:}``), production's
configs, networks and volumes, a stack name equal to production's or nested in its names
(``shop-prod_x``), and a secret ``file:`` in production's folder. Each is refused at the
line that wrote it (stack names by load_config, the rest by render), before anything
could be applied. Pure: load_config and render_stack on an in-memory tree
(tests/integration/test_cross_environment_swarm.py deploys it).
"""

from __future__ import annotations

import pytest

from gitswarm.errors import ConfigError, ValidationError
from gitswarm.render import render_stack
from gitswarm.render.secrets import Identity, encrypt
from gitswarm.repo import load_config
from tests.unit.test_render_trees import MemoryTree

DEV, PROD = Identity.generate(), Identity.generate()
OVERLAY = "environments/dev/docker-compose.yml"


def _config(prod_target: str = "local", extra_targets: str = "") -> str:
    return (
        "project: shop\n"
        "application: {name: web, stack: 'shop-{env}'}\n"
        f"targets:\n  local: {{}}\n  remote: {{}}\n{extra_targets}"
        "environments:\n"
        f"  dev: {{secrets: {{recipients: ['{DEV.recipient}']}}}}\n"
        f"  prod: {{target: {prod_target}, secrets: {{recipients: ['{PROD.recipient}']}}}}\n"
    )


BASE = """\
services:
  api:
    image: registry.local/api:1
    secrets: [token]
secrets:
  token:
    file: ../environments/${GITSWARM_ENV}/secrets/token.age
"""


def _files(overlay: str = "services: {}\n", **more: str | bytes) -> dict[str, str | bytes]:
    return {
        "gitswarm.yml": _config(),
        "base/docker-compose.yml": BASE,
        OVERLAY: overlay,
        "environments/dev/secrets/token.age": encrypt(b"dev-token", [DEV.recipient]),
        "environments/prod/docker-compose.yml": "services: {}\n",
        "environments/prod/secrets/token.age": encrypt(b"prod-token", [PROD.recipient]),
        **more,
    }


def _render(files: dict[str, str | bytes], env: str = "dev", app: str = "web") -> list[str]:
    """The problems of rendering ``app`` in ``env`` (none: it rendered)."""
    tree = MemoryTree(files)
    identity = DEV if env == "dev" else PROD
    try:
        render_stack(tree, load_config(tree), app, env, identity)
    except ValidationError as exc:
        return [str(p) for p in exc.problems]
    return []


def _prod_secret_name() -> str:
    tree = MemoryTree(_files())
    desired = render_stack(tree, load_config(tree), "web", "prod", PROD)
    (secret,) = desired.objects
    assert secret.name.startswith("shop-prod_token_")
    return secret.name


def _uses(kind: str, key: str, declaration: str) -> str:
    """An overlay where service api uses ``kind`` ``key``, declared as ``declaration``
    (the lines under ``  key:``); the declaration's first line is line 7."""
    use = {
        "secrets": f"    secrets: [token, {key}]\n",
        "configs": f"    configs: [{key}]\n",
        "networks": f"    networks: [{key}]\n",
        "volumes": f"    volumes: ['{key}:/data']\n",
    }[kind]
    return f"services:\n  api:\n{use}{kind}:\n  {key}:\n{declaration}"


def _refused(kind: str, key: str, name: str, line: int, column: int) -> str:
    noun = kind[:-1]
    return (
        f"{OVERLAY}:{line}:{column}: {noun} {key}: {name!r} belongs to stack 'shop-prod' of "
        f"application 'web' in environment 'prod'; a stack of 'dev' must not use another "
        f"environment's {kind}. Declare the {noun} in this environment (secrets: an .age file "
        "encrypted to dev's recipients) [cross-environment]"
    )


def test_production_s_content_addressed_secret_cannot_be_declared_external() -> None:
    name = _prod_secret_name()
    overlay = _uses("secrets", "db", f"    external: true\n    name: {name}\n")
    assert _render(_files(overlay)) == [_refused("secrets", "db", name, 7, 5)]


@pytest.mark.parametrize(
    ("kind", "declaration", "name", "at"),
    [
        ("secrets", "    external: true\n    name: SHOP-PROD_token_0a1b2c\n",
         "SHOP-PROD_token_0a1b2c", (7, 5)),  # Swarm compares names without case
        ("secrets", "    external:\n      name: shop-prod_token_0a1b2c\n",
         "shop-prod_token_0a1b2c", (7, 7)),  # the legacy spelling
        ("configs", "    external: true\n    name: shop-prod_app_config_0a1b2c\n",
         "shop-prod_app_config_0a1b2c", (7, 5)),
        ("networks", "    external: true\n    name: shop-prod_default\n",
         "shop-prod_default", (7, 5)),  # production's services' network
        ("volumes", "    name: shop-prod_data\n", "shop-prod_data", (6, 5)),  # its data
    ],
)  # fmt: skip
def test_other_spellings_and_kinds_of_production_s_objects_are_refused(
    kind: str, declaration: str, name: str, at: tuple[int, int]
) -> None:
    overlay = _uses(kind, "stolen", declaration)
    assert _render(_files(overlay)) == [_refused(kind, "stolen", name, *at)]


def test_the_key_itself_as_the_external_name_is_refused() -> None:
    overlay = _uses("secrets", "shop-prod_token_0a1b2c", "    external: true\n")
    assert _render(_files(overlay)) == [
        _refused("secrets", "shop-prod_token_0a1b2c", "shop-prod_token_0a1b2c", 5, 3)
    ]


@pytest.mark.parametrize(
    "name",
    [
        "shop-dev_token_0a1b2c",  # development's own older version
        "shop-prodx_token",  # starts with production's stack, but not with 'shop-prod_'
        "shop-prod",  # production's stack name alone names no object of it
        "company_ca",  # an object the operator made by hand
    ],
)
def test_names_that_are_not_another_environment_s_objects_are_fine(name: str) -> None:
    overlay = _uses("secrets", "other", f"    external: true\n    name: {name}\n")
    assert _render(_files(overlay)) == []


def test_the_check_holds_whatever_target_production_names() -> None:
    """Two target entries cannot prove two swarms apart (an alias, another URL of the
    same host): references are refused whatever the targets say."""
    name = _prod_secret_name()
    files = _files(_uses("secrets", "db", f"    external: true\n    name: {name}\n"))
    files["gitswarm.yml"] = _config(prod_target="remote")
    assert _render(files) == [_refused("secrets", "db", name, 7, 5)]


# --- stack names ------------------------------------------------------------------------


def _extra_app(stack: str) -> str:
    return f"stack: '{stack}'\nenvironments: [dev]\nfiles: [extra/compose.yml]\n"


@pytest.mark.parametrize(
    ("stack", "why"),
    [
        ("shop-prod", "so one environment's sync would replace the other's services"),
        ("SHOP-PROD", "so one environment's sync would replace the other's services"),
        (
            "shop-prod_x",
            "and one name is the other's followed by '_', so the Swarm objects of one "
            "(<stack>_<name>) could be taken for the other's",
        ),
    ],
)
def test_a_development_stack_cannot_be_or_nest_in_production_s_on_the_same_target(
    stack: str, why: str
) -> None:
    files = _files(
        **{
            "applications/extra.yml": _extra_app(stack),
            "extra/compose.yml": "services:\n  tool:\n    image: registry.local/tool:1\n",
        }
    )
    with pytest.raises(ConfigError) as caught:
        load_config(MemoryTree(files))
    assert [str(p) for p in caught.value.problems] == [
        "gitswarm.yml:2:26: application 'web' deploys to stack 'shop-prod' in environment "
        f"'prod', and application 'extra' to stack {stack!r} in environment 'dev' on the same "
        f"target, {why}; give each environment stacks of its own (e.g. stack: "
        '"{app}-{env}") [cross-environment]',
        f"applications/extra.yml:1:1: application 'extra' deploys to stack {stack!r} in "
        "environment 'dev', and application 'web' to stack 'shop-prod' in environment "
        f"'prod' on the same target, {why}; give each environment stacks of its own (e.g. "
        'stack: "{app}-{env}") [cross-environment]',
    ]
    # (a second name for one endpoint is refused where endpoints are: the operator's
    # targets, tests/unit/test_targets_config.py)
    # on another swarm the same stack name is another stack
    files["gitswarm.yml"] = _config(prod_target="remote")
    assert _render(files, app="extra") == []


def test_one_stack_name_for_every_environment_on_one_target_is_refused() -> None:
    files = _files()
    files["gitswarm.yml"] = _config().replace("stack: 'shop-{env}'", "stack: shop")
    with pytest.raises(ConfigError) as caught:
        load_config(MemoryTree(files))
    assert [str(p) for p in caught.value.problems] == [
        "gitswarm.yml:2:26: application 'web' deploys to stack 'shop' in environment 'prod', "
        "and application 'web' to stack 'shop' in environment 'dev' on the same target, so "
        "one environment's sync would replace the other's services; give each environment "
        'stacks of its own (e.g. stack: "{app}-{env}") [cross-environment]'
    ]


# --- secret files -----------------------------------------------------------------------


def test_a_secret_file_of_another_environment_is_refused_before_decryption() -> None:
    # file: is relative to base/, the first compose file's folder
    overlay = "secrets:\n  token:\n    file: ../environments/prod/secrets/token.age\n"
    assert _render(_files(overlay)) == [
        f"{OVERLAY}:3:5: secret token: environments/prod/secrets/token.age is a secret of "
        "environment 'prod' (in environments/prod/), and a stack of 'dev' uses only its own: "
        "environments/dev/ or shared files outside environments/, decrypted with dev's "
        "identity. Encrypt the value for this environment with `gitswarm secret encrypt "
        "--env dev NAME` [cross-environment]"
    ]


@pytest.mark.parametrize(
    "path", ["base/shared.age", "environments/common/shared.age", "environments/dev/x/s.age"]
)
def test_shared_and_own_secret_files_are_fine(path: str) -> None:
    overlay = f"secrets:\n  token:\n    file: ../{path}\n"
    files = _files(overlay, **{path: encrypt(b"v", [DEV.recipient, PROD.recipient])})
    assert _render(files) == []
