"""`gitswarm init` writes a complete, committed example repo with working age secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.render.secrets import Identity

ENVS = ("development", "staging", "production")


@pytest.fixture()
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    keys = tmp_path / "keys"
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(keys))
    return keys


def test_init_writes_the_layout_and_commits(tmp_path: Path, keys: Path) -> None:
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["init", str(repo)])
    assert result.exit_code == 0, result.output
    assert (repo / "gitswarm.yml").is_file()
    assert (repo / "base" / "docker-compose.yml").is_file()
    for env in ENVS:
        d = repo / "environments" / env
        assert (d / "docker-compose.yml").is_file()
        assert "APP_VERSION=" in (d / ".env").read_text()
        assert (d / "configs" / "app.yml").is_file()
        assert (d / "secrets" / "jwt_secret.age").is_file()
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--oneline"], capture_output=True, text=True, check=True
    )
    assert len(log.stdout.splitlines()) == 1
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""


def test_each_environment_has_its_own_key_outside_the_repo(tmp_path: Path, keys: Path) -> None:
    repo = tmp_path / "repo"
    CliRunner().invoke(cli, ["init", str(repo)], catch_exceptions=False)
    config = (repo / "gitswarm.yml").read_text()
    recipients = set()
    for env in ENVS:
        key_file = keys / "medianest" / f"{env}.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        identity = Identity(key_file.read_text())
        assert identity.recipient in config
        recipients.add(identity.recipient)
        secret = (repo / "environments" / env / "secrets" / "jwt_secret.age").read_bytes()
        assert identity.decrypt(secret, source="test").startswith(f"jwt-{env}-".encode())
        assert b"jwt-" not in secret
    assert len(recipients) == 3
    assert "AGE-SECRET-KEY" not in "".join(
        p.read_text(errors="ignore") for p in repo.rglob("*") if p.is_file()
    )


def test_init_reuses_existing_keys(tmp_path: Path, keys: Path) -> None:
    CliRunner().invoke(cli, ["init", str(tmp_path / "a")], catch_exceptions=False)
    before = (keys / "medianest" / "production.key").read_text()
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "b")], catch_exceptions=False)
    assert "reused" in result.output
    assert (keys / "medianest" / "production.key").read_text() == before


def test_init_refuses_a_non_empty_directory(tmp_path: Path, keys: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
