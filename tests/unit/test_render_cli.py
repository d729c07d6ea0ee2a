"""`gitswarm render` and `gitswarm validate` on the example repository of `gitswarm init`,
and on broken ones: stable bytes, no secret value anywhere, every problem at once."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.render.secrets import Identity

ENVS = ("development", "staging", "production")


@pytest.fixture()
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["init", str(repo)])
    assert result.exit_code == 0, result.output
    return repo


def _plaintext(repo: Path, env: str) -> str:
    key = repo.parent / "keys" / "medianest" / f"{env}.key"
    secret = repo / "environments" / env / "secrets" / "jwt_secret.age"
    return Identity(key.read_text()).decrypt(secret.read_bytes(), source="test").decode()


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_example_validates(example: Path) -> None:
    code, out, _ = _run("validate", "--repo", str(example))
    assert code == 0, out
    for env in ENVS:
        assert f"ok    medianest in {env}: stack medianest-{env}, 2 services" in out


@pytest.mark.parametrize("env", ENVS)
def test_render_is_stable_and_shows_no_secret(
    example: Path, env: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code, first, err = _run("render", "--env", env, "--repo", str(example))
    assert code == 0, err
    _, again, _ = _run("render", "--env", env, "--repo", str(example))
    assert first == again
    assert f"name: medianest-{env}_jwt_secret_" in first
    assert f"name: medianest-{env}_app_config_" in first
    assert "io.gitswarm.spec-hash:" in first
    _, as_json, _ = _run("render", "--env", env, "--repo", str(example), "--json")
    value = _plaintext(example, env)
    for text in (first, as_json, err, caplog.text):
        assert value not in text
        assert "AGE-SECRET-KEY" not in text


def test_render_of_a_commit_ignores_uncommitted_changes(example: Path) -> None:
    env_file = example / "environments" / "development" / ".env"
    env_file.write_text(env_file.read_text().replace("APP_VERSION=1.0.0", "APP_VERSION=9.9.9"))
    _, working, _ = _run("render", "--env", "development", "--repo", str(example))
    code, committed, _ = _run(
        "render", "--env", "development", "--repo", str(example), "--revision", "HEAD"
    )
    assert code == 0
    assert "app:9.9.9" in working and "# revision: working tree" in working
    assert "app:1.0.0" in committed and "app:9.9.9" not in committed
    head = subprocess.run(
        ["git", "-C", str(example), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert f"io.gitswarm.revision: {head}" in committed


def test_render_json(example: Path) -> None:
    code, out, _ = _run("render", "--env", "staging", "--repo", str(example), "--json")
    assert code == 0
    data = json.loads(out)
    (stack,) = data["stacks"]
    assert stack["stack"] == "medianest-staging"
    assert {o["kind"] for o in stack["objects"]} == {"config", "secret"}
    assert stack["compose"]["services"]["medianest-app"]["deploy"]["replicas"] == 2
    assert set(stack["service_hashes"]) == {"medianest-app", "medianest-worker"}


def test_bad_input_exits_2_with_no_partial_output(example: Path) -> None:
    (example / "applications").mkdir()
    (example / "applications" / "tools.yml").write_text(
        "files: [tools/compose.yml]\nenvironments: [development]\n"
    )
    (example / "tools").mkdir()
    (example / "tools" / "compose.yml").write_text("services:\n  t:\n    image: ${NOPE}\n")
    code, out, err = _run("render", "--env", "development", "--repo", str(example))
    assert code == 2
    assert out == ""  # medianest rendered fine, but nothing is printed
    assert "tools/compose.yml:3:5: services.t.image: variable NOPE is not set" in err
    code, out, _ = _run("validate", "--repo", str(example))
    assert code == 2
    assert "FAIL  tools in development" in out
    assert "ok    medianest in production" in out
    assert "tools/compose.yml:3:5" in out


def test_validate_prints_every_problem_once(example: Path) -> None:
    base = example / "base" / "docker-compose.yml"
    base.write_text(base.read_text().replace("replicas: 1", 'replicas: "three"', 1))
    prod = example / "environments" / "production" / "docker-compose.yml"
    prod.write_text(prod.read_text() + "bogus: true\n")
    code, out, _ = _run("validate", "--repo", str(example), "--json")
    assert code == 2
    data = json.loads(out)
    messages = [f"{p['file']}:{p['line']}: {p['message']}" for p in data["problems"]]
    replicas = [m for m in messages if "replicas must be an integer" in m]
    assert len(replicas) == 1 and replicas[0].startswith("base/docker-compose.yml:")
    assert any(
        m.startswith("environments/production/docker-compose.yml:") and "unknown key 'bogus'" in m
        for m in messages
    )
    assert [s["ok"] for s in data["stacks"]] == [False, False, False]


def test_validate_reports_a_broken_gitswarm_yml(example: Path) -> None:
    config = example / "gitswarm.yml"
    config.write_text(config.read_text().replace("  staging:\n", "  stag/ing:\n"))
    code, out, _ = _run("validate", "--repo", str(example))
    assert code == 2
    assert "gitswarm.yml:" in out and "environment name 'stag/ing' is not valid" in out


def test_a_missing_key_is_a_problem_that_says_where_it_looked(example: Path) -> None:
    (example.parent / "keys" / "medianest" / "production.key").unlink()
    code, out, _ = _run("validate", "--repo", str(example), "--env", "production")
    assert code == 2
    assert "no age identity for environment 'production'" in out
    code, _, err = _run("render", "--repo", str(example), "--env", "production")
    assert code == 2 and "production.key does not exist" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["render", "--env", "qa"], "unknown environment 'qa'"),
        (["render", "--env", "development", "--app", "nope"], "unknown application 'nope'"),
        (["render", "--env", "development", "--revision", "nope"], "not a commit"),
        (["validate", "--env", "qa"], "unknown environment 'qa'"),
    ],
)
def test_usage_errors(example: Path, args: list[str], words: str) -> None:
    code, _, err = _run(*args, "--repo", str(example))
    assert code == 2
    assert words in err


def test_a_url_is_not_a_local_repository() -> None:
    code, _, err = _run("render", "--env", "x", "--repo", "https://example.com/r.git")
    assert code == 2 and "looks like a URL" in err


def _set(repo: Path, path: str, text: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)


def _append(repo: Path, path: str, text: str) -> None:
    _set(repo, path, (repo / path).read_text() + text)


DEV = "environments/development/docker-compose.yml"


def _symlink_out(repo: Path) -> None:
    target = repo / "environments/development/configs/app.yml"
    target.unlink()
    target.symlink_to("/etc/passwd")


def _huge_config(repo: Path) -> None:
    with (repo / "environments/development/configs/app.yml").open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)


def _other_key(repo: Path) -> None:
    from gitswarm.render.secrets import encrypt

    other = Identity.generate()
    secret = repo / "environments/development/secrets/jwt_secret.age"
    secret.write_bytes(encrypt(b"x", [other.recipient]))


def _shared_stack(repo: Path) -> None:
    _set(repo, "applications/extra.yml", "stack: 'medianest-{env}'\nfiles: [extra/compose.yml]\n")
    _set(repo, "extra/compose.yml", "services:\n  medianest-worker:\n    image: busybox\n")


BAD_INPUTS = {
    "malformed-yaml": (lambda r: _append(r, DEV, "  oops: [\n"), f"{DEV}:"),
    "compose-is-a-list": (lambda r: _set(r, DEV, "- a\n- b\n"), f"{DEV}:1:1: a compose file"),
    "compose-is-a-scalar": (lambda r: _set(r, DEV, "hello\n"), "a single string"),
    "service-without-image": (
        lambda r: _append(r, DEV, "  sidecar:\n    user: '1'\n"),
        "service sidecar has no image",
    ),
    "replicas-three": (
        lambda r: _set(
            r,
            DEV,
            (r / DEV)
            .read_text()
            .replace("    deploy:\n", "    deploy:\n      replicas: three\n", 1),
        ),
        "replicas must be an integer",
    ),
    "unknown-top-level-key": (lambda r: _append(r, DEV, "servces: {}\n"), "unknown key 'servces'"),
    "file-etc-shadow": (
        lambda r: _append(r, DEV, "configs:\n  app_config:\n    file: /etc/shadow\n"),
        "'/etc/shadow' is an absolute path",
    ),
    "file-outside": (
        lambda r: _append(r, DEV, "configs:\n  app_config:\n    file: ../../outside\n"),
        "'../../outside' leaves the repository",
    ),
    "symlink-out": (_symlink_out, "points outside the repository"),
    "50-mb-config": (_huge_config, "52428800 bytes, over the limit of 1048576 bytes"),
    "secret-for-another-key": (_other_key, "is encrypted to other keys, not to the identity of"),
    "unset-variable": (
        lambda r: _set(r, "environments/development/.env", "REGISTRY=127.0.0.1:5000\n"),
        "variable APP_VERSION is not set",
    ),
    "missing-compose-file": (
        lambda r: _set(r, "applications/extra.yml", "files: [nowhere/compose.yml]\n"),
        "lists compose file 'nowhere/compose.yml', which does not exist",
    ),
    "duplicate-service-in-one-stack": (_shared_stack, "is also a service of application"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_through_the_cli(example: Path, name: str) -> None:
    change, words = BAD_INPUTS[name]
    change(example)
    code, out, err = _run("render", "--env", "development", "--repo", str(example))
    assert code == 2, err
    assert out == ""
    assert words in err
    assert "error [" in err
    code, out, _ = _run("validate", "--env", "development", "--repo", str(example))
    assert code == 2 and words in out
