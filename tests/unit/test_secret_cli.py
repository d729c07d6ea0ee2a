"""`gitswarm secret keygen` and `gitswarm secret encrypt`: keys where gitswarm looks for
them, values from stdin only, files that render/ can decrypt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.render import render_stack
from gitswarm.render.secrets import Identity
from gitswarm.repo import load_config
from gitswarm.source.keys import load_identity
from gitswarm.source.tree import WorkTree

VALUE = b"p@ss w0rd with spaces\n"


@pytest.fixture()
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    assert CliRunner().invoke(cli, ["init", str(repo)]).exit_code == 0
    return repo


def test_keygen_reports_existing_keys_and_creates_missing_ones(example: Path) -> None:
    keys = example.parent / "keys" / "medianest"
    before = (keys / "staging.key").read_text()
    (keys / "production.key").unlink()
    result = CliRunner().invoke(cli, ["secret", "keygen", "--repo", str(example), "--json"])
    assert result.exit_code == 0, result.output
    states = {k["env"]: k for k in json.loads(result.stdout)["keys"]}
    assert states["staging"]["state"] == "exists" and states["staging"]["in_gitswarm_yml"]
    assert states["production"]["state"] == "created"
    assert not states["production"]["in_gitswarm_yml"]  # a new key: gitswarm.yml has the old one
    assert (keys / "staging.key").read_text() == before
    assert (keys / "production.key").stat().st_mode & 0o777 == 0o600
    new = Identity((keys / "production.key").read_text())
    assert states["production"]["recipient"] == new.recipient
    human = CliRunner().invoke(
        cli, ["secret", "keygen", "--repo", str(example), "--env", "production"]
    )
    assert f"production: {new.recipient}" in human.stdout
    assert "add it to gitswarm.yml: environments.production.secrets.recipients" in human.stdout
    assert "AGE-SECRET-KEY" not in human.output + result.output


def test_keygen_honours_the_key_file_variable(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "elsewhere" / "dev.key"
    monkeypatch.setenv("GITSWARM_AGE_KEY_FILE_DEVELOPMENT", str(target))
    result = CliRunner().invoke(
        cli, ["secret", "keygen", "--repo", str(example), "--env", "development"]
    )
    assert result.exit_code == 0
    assert target.exists() and f"created: {target}" in result.stdout


def test_encrypt_reads_stdin_and_writes_an_age_file_render_can_use(example: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["secret", "encrypt", "--env", "staging", "--repo", str(example), "db_password"],
        input=VALUE,
    )
    assert result.exit_code == 0, result.output
    path = example / "environments" / "staging" / "secrets" / "db_password.age"
    assert "wrote environments/staging/secrets/db_password.age" in result.stdout
    data = path.read_bytes()
    assert VALUE.strip() not in data and VALUE.decode() not in result.output
    identity = load_identity("medianest", "staging")
    assert identity.decrypt(data, source="test") == VALUE  # exact bytes, newline kept
    # use it in the stack: it renders into a content-addressed Swarm secret
    base = example / "base" / "docker-compose.yml"
    text = base.read_text().replace(
        "secrets:\n  jwt_secret:",
        "secrets:\n  db_password:\n"
        "    file: ../environments/${GITSWARM_ENV}/secrets/db_password.age\n  jwt_secret:",
    )
    base.write_text(text)
    tree = WorkTree(example)
    desired = render_stack(tree, load_config(tree), "medianest", "staging", identity)
    secret = next(o for o in desired.objects if o.key == "db_password")
    assert secret.data == VALUE and secret.name.startswith("medianest-staging_db_password_")
    again = CliRunner().invoke(
        cli,
        ["secret", "encrypt", "--env", "staging", "--repo", str(example), "db_password.age"],
        input=b"x",
    )
    assert "updated environments/staging/secrets/db_password.age" in again.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (["--env", "staging", "../escape"], b"v", "secret name '../escape' is not valid"),
        (["--env", "staging", "a/b"], b"v", "is not valid"),
        (["--env", "staging", "ok"], b"", "the secret value is empty"),
        (["--env", "qa", "ok"], b"v", "unknown environment 'qa'"),
    ],
)
def test_encrypt_refuses(example: Path, args: list[str], stdin: bytes, words: str) -> None:
    result = CliRunner().invoke(
        cli, ["secret", "encrypt", "--repo", str(example), *args], input=stdin
    )
    assert result.exit_code == 2
    assert words in result.stderr
    assert not list((example / "environments" / "staging" / "secrets").glob("ok*"))


def test_encrypt_needs_recipients(example: Path) -> None:
    config = example / "gitswarm.yml"
    text = config.read_text()
    start = text.index("    secrets:\n      recipients:", text.index("  staging:"))
    end = text.index("\n", text.index("recipients:", start)) + 1
    config.write_text(text[:start] + text[end:])
    result = CliRunner().invoke(
        cli, ["secret", "encrypt", "--env", "staging", "--repo", str(example), "x"], input=b"v"
    )
    assert result.exit_code == 2
    assert (
        "no recipients" in result.stderr and "gitswarm secret keygen --env staging" in result.stderr
    )
