"""render_stack: from a Tree to the exact stack that will be deployed — labels, hashes,
content-addressed configs and secrets, and a clear error for every kind of bad input."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from gitswarm.errors import (
    InputError,
    InterpolationError,
    PathError,
    RenderError,
    SecretError,
    UsageError,
    ValidationError,
    YamlError,
)
from gitswarm.model.stack import (
    LABEL_APP,
    LABEL_ENV,
    LABEL_OWNER,
    LABEL_REVISION,
    LABEL_SPEC_HASH,
    DesiredStack,
)
from gitswarm.model.tree import Tree
from gitswarm.render import render_stack, to_yaml
from gitswarm.render.output import escape_dollars
from gitswarm.render.schema import _validator as schema_validator
from gitswarm.render.schema import deployable_version, supported_versions
from gitswarm.render.secrets import Identity, encrypt
from gitswarm.repo import load_config
from gitswarm.repo.yamlsrc import parse_yaml
from gitswarm.source.tree import GitTree, WorkTree
from tests.unit.test_render_trees import MemoryTree, make_git_repo

IDENTITY = Identity.generate()
OTHER = Identity.generate()
PLAINTEXT = b"s3cr3t-value-never-shown"

CONFIG = f"""\
project: shop
application:
  name: web
  stack: "shop-{{env}}"
environments:
  dev:
    secrets: {{recipients: ["{IDENTITY.recipient}"]}}
  prod: {{}}
"""
BASE = """\
services:
  api:
    image: ${REGISTRY}/api:${TAG}
    environment:
      MODE: base
      PRICE: "$$5"
    configs: [{source: app_config, target: /etc/app.yml}]
    secrets: [db_password]
    networks: [backend]
    deploy:
      labels: {team: core}
  worker:
    image: ${REGISTRY}/worker:${TAG}
    networks: [backend]
networks:
  backend: {driver: overlay}
configs:
  app_config:
    file: ../environments/${GITSWARM_ENV}/app.yml
secrets:
  db_password:
    file: ../environments/${GITSWARM_ENV}/db_password.age
  external_one:
    external: true
"""
OVERLAY = "services:\n  api:\n    environment:\n      MODE: ${GITSWARM_ENV}\n"


def repo_files(**overrides: str | bytes | None) -> dict[str, str | bytes]:
    files: dict[str, str | bytes | None] = {
        "gitswarm.yml": CONFIG,
        "base/docker-compose.yml": BASE,
        "environments/dev/docker-compose.yml": OVERLAY,
        "environments/dev/.env": "REGISTRY=registry.local:5000\nTAG=1.0\n",
        "environments/dev/app.yml": "feature: on\n",
        "environments/dev/db_password.age": encrypt(PLAINTEXT, [IDENTITY.recipient]),
        "environments/prod/docker-compose.yml": OVERLAY,
        "environments/prod/.env": "REGISTRY=registry.local:5000\nTAG=0.9\n",
        "environments/prod/app.yml": "feature: off\n",
        "environments/prod/db_password.age": encrypt(PLAINTEXT, [IDENTITY.recipient]),
    }
    files.update(overrides)
    return {k: v for k, v in files.items() if v is not None}


def render(
    tree: Tree, env: str = "dev", app: str = "web", identity: Identity | None = IDENTITY
) -> DesiredStack:
    return render_stack(tree, load_config(tree), app, env, identity)


def render_error(files: dict[str, str | bytes], env: str = "dev", **kw: object) -> InputError:
    with pytest.raises(InputError) as info:
        tree = MemoryTree(files, kw.pop("symlinks", None))  # type: ignore[arg-type]
        render(tree, env, **kw)  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    return info.value


# --- what a good render looks like ---------------------------------------------------------


def test_renders_merged_interpolated_and_labelled() -> None:
    desired = render(MemoryTree(repo_files(), revision="a" * 40))
    assert desired.stack == "shop-dev" and desired.revision == "a" * 40
    assert desired.files == ("base/docker-compose.yml", "environments/dev/docker-compose.yml")
    api = desired.services["api"]
    assert api["image"] == "registry.local:5000/api:1.0"
    assert api["environment"] == {"MODE": "dev", "PRICE": "$5"}
    labels = api["deploy"]["labels"]
    assert labels["team"] == "core"
    assert labels[LABEL_OWNER] == "gitswarm"
    assert labels[LABEL_APP] == "web" and labels[LABEL_ENV] == "dev"
    assert labels[LABEL_REVISION] == "a" * 40
    assert labels[LABEL_SPEC_HASH] == desired.service_hashes["api"]
    assert "labels" not in api  # container labels untouched: a new revision restarts nothing
    assert set(desired.service_hashes) == {"api", "worker"}


def test_configs_and_secrets_become_content_addressed_external_objects() -> None:
    desired = render(MemoryTree(repo_files()))
    config, secret = desired.objects
    assert config.kind == "config" and config.key == "app_config"
    digest = hashlib.sha256(b"feature: on\n").hexdigest()[:12]
    assert config.name == f"shop-dev_app_config_{digest}"
    assert config.data == b"feature: on\n" and config.source == "environments/dev/app.yml"
    assert desired.compose["configs"]["app_config"] == {"name": config.name, "external": True}
    assert secret.kind == "secret" and secret.data == PLAINTEXT
    assert secret.name.startswith("shop-dev_db_password_")
    assert hashlib.sha256(PLAINTEXT).hexdigest()[:12] not in secret.name  # keyed hash
    assert desired.compose["secrets"]["db_password"] == {"name": secret.name, "external": True}
    assert desired.compose["secrets"]["external_one"] == {"name": "external_one", "external": True}
    assert secret.labels["io.gitswarm.key"] == "db_password"
    assert secret.labels["com.docker.stack.namespace"] == "shop-dev"
    assert all(len(o.name) <= 64 for o in desired.objects)


def test_secret_values_never_show() -> None:
    desired = render(MemoryTree(repo_files()))
    shown = to_yaml(desired) + repr(desired) + str(desired.objects) + repr(IDENTITY)
    assert PLAINTEXT.decode() not in shown
    assert "AGE-SECRET-KEY" not in shown


def test_revision_label_only_for_commits_and_hashes_ignore_it() -> None:
    work = render(MemoryTree(repo_files()))
    one = render(MemoryTree(repo_files(), revision="1" * 40))
    two = render(MemoryTree(repo_files(), revision="2" * 40))
    assert LABEL_REVISION not in work.services["api"]["deploy"]["labels"]
    assert one.service_hashes == two.service_hashes == work.service_hashes


def test_a_changed_config_rotates_its_name_and_only_its_users_hashes() -> None:
    before = render(MemoryTree(repo_files()))
    after = render(MemoryTree(repo_files(**{"environments/dev/app.yml": "feature: off\n"})))
    assert before.objects[0].name != after.objects[0].name
    assert before.service_hashes["api"] != after.service_hashes["api"]
    assert before.service_hashes["worker"] == after.service_hashes["worker"]


def test_the_same_revision_gives_the_same_bytes() -> None:
    first = to_yaml(render(MemoryTree(repo_files(), revision="f" * 40)))
    again = to_yaml(render(MemoryTree(repo_files(), revision="f" * 40)))
    assert first == again


def _versioned(version: str | None, base: str, extra: dict[str, str] | None = None) -> MemoryTree:
    head = "" if version is None else f"version: '{version}'\n"
    files = repo_files(
        **{
            "base/docker-compose.yml": head + base,
            "environments/dev/docker-compose.yml": head + "services: {}\n",
            **(extra or {}),
        }
    )
    return MemoryTree(files)


EXTERNAL_NETWORK = (
    "services:\n  proxy:\n    image: traefik:1.7\n    networks: [public]\n"
    "networks:\n  public:\n    external: true\n"
)


@pytest.mark.parametrize(
    ("version", "base", "deploys_as"),
    [
        ("3.3", EXTERNAL_NETWORK, "3.5"),  # name: on an external network needs 3.5
        ("3.0", EXTERNAL_NETWORK, "3.5"),
        ("3.4", EXTERNAL_NETWORK, "3.5"),
        ("3.0", "services:\n  web:\n    image: a\n", "3.0"),  # nothing that needs more
        ("3.0", "services:\n  web:\n    image: a\n    ports: ['80:80']\n", "3.2"),
        (
            "3.4",
            "services:\n  db:\n    image: a\n    volumes: [pg:/data]\n"
            "volumes:\n  pg:\n    external: true\n",
            "3.4",  # volume names exist from 3.4
        ),
        ("3.3", BASE.replace("${REGISTRY}/", ""), "3.5"),  # configs, secrets: external + name
        ("3.5", EXTERNAL_NETWORK, "3.5"),
        ("3.9", EXTERNAL_NETWORK, "3.9"),  # never lowered
        ("3.13", EXTERNAL_NETWORK, "3.13"),
        # none (or "3", the latest 3.x): the lowest that fits, which older CLIs know too
        ("3", EXTERNAL_NETWORK, "3.5"),
        (None, EXTERNAL_NETWORK, "3.5"),
        (None, "services:\n  web:\n    image: a\n", "3.0"),
        (
            None,
            "services:\n  web:\n    image: a\n    healthcheck:\n"
            "      test: [CMD, 'true']\n      start_interval: 1s\n",
            "3.12",  # start_interval exists from 3.12
        ),
    ],
)
def test_the_deployable_file_says_the_version_its_content_needs(
    version: str | None, base: str, deploys_as: str
) -> None:
    desired = render(_versioned(version, base))
    assert desired.compose["version"] == deploys_as
    assert parse_yaml(to_yaml(desired), "out").data["version"] == deploys_as
    # the quick key check only skips versions whose full validation fails too
    known = supported_versions()
    floor = 0 if version in (None, "3") else known.index(str(version))
    data = dict(desired.compose)
    valid = [v for v in known[floor:] if schema_validator(v).is_valid(data)]  # type: ignore[union-attr]
    assert valid[0] == deploys_as


def test_no_schema_accepting_the_data_keeps_the_files_version() -> None:
    assert deployable_version({"services": 5}, "3.3") == "3.3"  # the deploy says why
    assert deployable_version({"services": 5}, None) == "3.13"
    assert deployable_version({"services": {}}, "9.1") == "9.1"


def test_a_raised_version_changes_no_value_and_no_hash() -> None:
    """Only the schema the deploy checks against moves: 3.3 and 3.5 render the same."""
    old = render(_versioned("3.3", EXTERNAL_NETWORK))
    new = render(_versioned("3.5", EXTERNAL_NETWORK))
    assert old.compose == new.compose
    assert old.service_hashes == new.service_hashes


def test_yaml_escapes_dollars_and_reads_back_as_the_compose() -> None:
    desired = render(MemoryTree(repo_files()))
    text = to_yaml(desired)
    assert "PRICE: $$5\n" in text
    assert parse_yaml(text, "out.yml").data == escape_dollars(dict(desired.compose))


def test_strings_that_look_like_other_types_are_quoted() -> None:
    files = repo_files(
        **{
            "environments/dev/docker-compose.yml": (
                "services:\n  api:\n    environment: {A: '0400', B: 'true', C: '1_000', D: 'yes'}\n"
            )
        }
    )
    text = to_yaml(render(MemoryTree(files)))
    env = parse_yaml(text, "out.yml").data["services"]["api"]["environment"]
    assert env["A"] == "0400" and env["B"] == "true" and env["C"] == "1_000" and env["D"] == "yes"


@pytest.mark.parametrize("word", ["yes", "No", "ON", "off", "y", "N"])
def test_yaml_1_1_booleans_are_quoted_for_docker_clis_before_28(word: str) -> None:
    """yaml.v2 (Docker CLI 20.10-27) reads a plain yes/no/on/off/y/n as a boolean: a
    label value `no` then fails its schema, a key `ON` is "Non-string key"."""
    overlay = f"services:\n  api:\n    environment: {{{word}: '{word}'}}\n"
    text = to_yaml(
        render(MemoryTree(repo_files(**{"environments/dev/docker-compose.yml": overlay})))
    )
    assert f'"{word}": "{word}"' in text


def test_gitswarm_variables_and_their_precedence() -> None:
    files = repo_files(
        **{
            "environments/dev/docker-compose.yml": (
                "services:\n  api:\n"
                "    environment: {S: '${GITSWARM_STACK}', A: '${GITSWARM_APP}'}\n"
            )
        }
    )
    env = render(MemoryTree(files)).services["api"]["environment"]
    assert env["S"] == "shop-dev" and env["A"] == "web"
    error = render_error(
        repo_files(**{"environments/dev/.env": "REGISTRY=r\nTAG=1\nGITSWARM_ENV=prod\n"})
    )
    assert "environments/dev/.env:3: GITSWARM_ENV is set by gitswarm" in str(error)


def test_the_agents_environment_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAG", "from-the-process")
    files = repo_files(**{"environments/dev/.env": "REGISTRY=r\n"})
    error = render_error(files)
    assert "variable TAG is not set" in str(error)


def test_worktree_and_gittree_render_the_same(tmp_path: Path) -> None:
    files = repo_files()
    make_git_repo(tmp_path / "r", files)
    from_git = render(GitTree(tmp_path / "r", "main"))
    from_disk = render(WorkTree(tmp_path / "r"))
    assert from_git.services["api"]["image"] == from_disk.services["api"]["image"]
    assert from_git.service_hashes == from_disk.service_hashes
    assert [o.name for o in from_git.objects] == [o.name for o in from_disk.objects]


# --- bad input: a clear error naming the file and the problem --------------------------------


def test_malformed_yaml_names_line_and_column() -> None:
    error = render_error(
        repo_files(**{"environments/dev/docker-compose.yml": "services:\n  api: [\n"})
    )
    assert isinstance(error, YamlError) and error.reason == "YamlInvalid"
    assert "environments/dev/docker-compose.yml:3:1:" in str(error)


@pytest.mark.parametrize(
    ("text", "shape"), [("- api\n- worker\n", "a list"), ("42\n", "a single value")]
)
def test_a_compose_file_that_is_not_a_mapping(text: str, shape: str) -> None:
    error = render_error(repo_files(**{"environments/dev/docker-compose.yml": text}))
    assert "environments/dev/docker-compose.yml:1:1: a compose file must be a mapping" in str(error)
    assert shape in str(error)


def test_a_service_without_image() -> None:
    error = render_error(
        repo_files(
            **{"environments/dev/docker-compose.yml": "services:\n  extra:\n    user: '1'\n"}
        )
    )
    assert isinstance(error, ValidationError)
    assert "environments/dev/docker-compose.yml:2:3: service extra has no image" in str(error)


def test_replicas_three() -> None:
    files = repo_files(
        **{
            "environments/dev/docker-compose.yml": (
                'services:\n  api:\n    deploy:\n      replicas: "three"\n'
            )
        }
    )
    error = render_error(files)
    assert (
        "environments/dev/docker-compose.yml:4:7: services.api.deploy.replicas must be an integer"
        in str(error)
    )


def test_an_unknown_top_level_key() -> None:
    error = render_error(
        repo_files(**{"environments/dev/docker-compose.yml": "service:\n  api: {}\n"})
    )
    assert "environments/dev/docker-compose.yml:1:1: unknown key 'service' at the top level" in str(
        error
    )


@pytest.mark.parametrize(
    ("env", "app"), [("dev/../prod", "web"), ("..", "web"), ("dev", "web/x"), ("dev", "..")]
)
def test_env_or_app_names_with_slashes_or_dots(env: str, app: str) -> None:
    tree = MemoryTree(repo_files())
    with pytest.raises(UsageError, match=r"name .* is not valid"):
        render_stack(tree, load_config(tree), app, env, IDENTITY)


@pytest.mark.parametrize(
    ("file", "words"),
    [
        ("/etc/shadow", "'/etc/shadow' is an absolute path"),
        ("../../outside", "'../../outside' leaves the repository"),
    ],
)
def test_file_paths_outside_the_repository(file: str, words: str) -> None:
    overlay = f"configs:\n  app_config:\n    file: {file}\n"
    error = render_error(repo_files(**{"environments/dev/docker-compose.yml": overlay}))
    assert isinstance(error, PathError) and error.reason == "PathOutsideRepo"
    assert "environments/dev/docker-compose.yml:3:5:" in str(error)
    assert words in str(error)


def test_a_symlink_pointing_out_of_the_repository(tmp_path: Path) -> None:
    files = repo_files(**{"environments/dev/app.yml": None})
    error = render_error(files, symlinks={"environments/dev/app.yml": "../../../etc/passwd"})
    assert "environments/dev/app.yml is a symlink" in str(
        error
    ) and "outside the repository" in str(error)
    assert "base/docker-compose.yml:19:5" in str(error)
    root = tmp_path / "r"
    make_git_repo(root, files, {"environments/dev/app.yml": "/etc/passwd"})
    with pytest.raises(PathError, match="outside the repository"):
        render(GitTree(root, "main"))
    (root / "environments/dev/app.yml").unlink()
    os.symlink("/etc/passwd", root / "environments/dev/app.yml")
    with pytest.raises(PathError, match="points outside the repository"):
        render(WorkTree(root))


def test_a_50_megabyte_config_file(tmp_path: Path) -> None:
    error = render_error(repo_files(**{"environments/dev/app.yml": b"x" * (50 * 1024 * 1024)}))
    assert "environments/dev/app.yml is 52428800 bytes, over the limit of 1048576 bytes" in str(
        error
    )
    root = tmp_path / "r"
    make_git_repo(root, repo_files())
    with (root / "environments/dev/app.yml").open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: cheap to make
    with pytest.raises(RenderError, match="52428800 bytes, over the limit"):
        render(WorkTree(root))


def test_a_config_over_swarms_limit() -> None:
    error = render_error(repo_files(**{"environments/dev/app.yml": b"y" * (600 * 1024)}))
    assert "Swarm needs more than 0 and less than 512000 bytes" in str(error)


def test_a_secret_encrypted_to_another_key() -> None:
    files = repo_files(
        **{"environments/dev/db_password.age": encrypt(PLAINTEXT, [OTHER.recipient])}
    )
    error = render_error(files)
    assert isinstance(error, SecretError) and error.reason == "SecretDecryptFailed"
    assert (
        "environments/dev/db_password.age is encrypted to other keys, not to the identity of "
        "this environment" in str(error)
    )
    assert "base/docker-compose.yml:22:5" in str(error)


def test_a_plaintext_secret_file() -> None:
    overlay = "secrets:\n  db_password:\n    file: ./plain.txt\n"
    files = repo_files(**{"environments/dev/docker-compose.yml": overlay, "base/plain.txt": "pw"})
    error = render_error(files)
    assert "secret db_password: base/plain.txt is not an age-encrypted file" in str(error)
    assert "gitswarm secret encrypt --env dev db_password" in str(error)


def test_a_missing_identity() -> None:
    error = render_error(repo_files(), identity=None)
    assert isinstance(error, SecretError)
    assert "no age identity for environment 'dev'" in str(error)


def test_an_unset_variable() -> None:
    error = render_error(repo_files(**{"environments/dev/.env": "REGISTRY=r\n"}))
    assert isinstance(error, InterpolationError) and error.reason == "VariableUnset"
    assert "base/docker-compose.yml:3:5: services.api.image: variable TAG is not set" in str(error)
    assert "base/docker-compose.yml:13:5: services.worker.image: variable TAG is not set" in str(
        error
    )


def test_an_application_listing_a_missing_compose_file() -> None:
    config = CONFIG.replace(
        '  stack: "shop-{env}"\n',
        '  stack: "shop-{env}"\n  files: [base/docker-compose.yml, "extra/{env}.yml"]\n',
    )
    error = render_error(repo_files(**{"gitswarm.yml": config}))
    assert (
        "gitswarm.yml:5:36: application 'web' lists compose file 'extra/dev.yml', "
        "which does not exist" in str(error)
    )


def test_a_service_name_used_by_two_applications_in_one_stack() -> None:
    other = "stack: 'shop-{env}'\nfiles: [other/compose.yml]\n"
    files = repo_files(
        **{
            "applications/other.yml": other,
            "other/compose.yml": "services:\n  worker:\n    image: busybox\n",
        }
    )
    error = render_error(files)
    assert (
        "other/compose.yml:2:3: service 'worker' of application 'other' is also a service "
        "of application 'web'" in str(error)
    )
    assert "(also defined in base/docker-compose.yml:12)" in str(error)


def test_references_must_be_declared() -> None:
    overlay = (
        "services:\n  api:\n    secrets: [nope]\n    networks: [front]\n"
        "    volumes: ['data:/data']\n    configs: [missing]\n"
    )
    error = render_error(repo_files(**{"environments/dev/docker-compose.yml": overlay}))
    text = str(error)
    assert "uses secret 'nope', which is not declared" in text
    assert "uses network 'front', which is not declared" in text
    assert "mounts volume 'data', which is not declared" in text
    assert "uses config 'missing', which is not declared" in text
    assert len(error.problems) == 4


def test_reserved_labels_and_bad_images() -> None:
    overlay = (
        "services:\n  api:\n    image: 'Registry/API:'\n"
        "    deploy: {labels: {io.gitswarm.owner: me}}\n"
    )
    error = render_error(repo_files(**{"environments/dev/docker-compose.yml": overlay}))
    assert "image 'Registry/API:'" in str(error)
    assert "the label 'io.gitswarm.owner' is reserved" in str(error)


def test_unknown_environment_or_application() -> None:
    tree = MemoryTree(repo_files())
    with pytest.raises(UsageError, match="unknown environment 'qa'"):
        render_stack(tree, load_config(tree), "web", "qa", None)
    with pytest.raises(UsageError, match="unknown application 'api'"):
        render_stack(tree, load_config(tree), "api", "dev", None)


def test_object_names_fit_swarms_64_characters() -> None:
    from gitswarm.render.names import object_name, service_name_problem

    name = object_name("s" * 40, "a_very_long_configuration_key", "0123456789ab")
    assert name is not None and len(name) == 64
    assert name.startswith("s" * 40 + "_a_very_lon_") and name.endswith("_0123456789ab")
    assert object_name("s" * 51, "key", "0123456789ab") is None
    assert service_name_problem("shop-dev", "api") is None
    assert "63" in (service_name_problem("s" * 60, "api") or "")
    assert "not valid" in (service_name_problem("shop.dev", "api") or "")


def test_a_plaintext_file_named_age() -> None:
    error = render_error(repo_files(**{"environments/dev/db_password.age": "hunter2\n"}))
    assert (
        "environments/dev/db_password.age is not an age-encrypted file (plaintext in Git?)"
        in str(error)
    )
    assert "hunter2" not in str(error)
