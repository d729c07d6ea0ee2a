"""The CLI starts at once (SPEC.md section 7): ``gitswarm --help`` imports no command
module, each command imports only what it needs, and the help table in cli/main.py says
what each command's own docstring says. The timings themselves are in bench/ (cli)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gitswarm.cli.main import COMMANDS, cli
from gitswarm.store import Store

HEAVY = ("fastapi", "sqlalchemy", "alembic", "docker", "regopy", "uvicorn", "apprise", "rich")


def _imported_by(args: list[str]) -> set[str]:
    """The top-level modules loaded by ``gitswarm ARGS`` in a fresh interpreter."""
    probe = (
        "import sys, json\n"
        "from gitswarm.cli.main import cli\n"
        "try:\n"
        f"    cli({args!r}, prog_name='gitswarm')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_help_table_says_what_the_command_says(name: str) -> None:
    module, attr, short = COMMANDS[name]
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    assert command.get_short_help_str(limit=1000) == short


def test_help_lists_every_command_and_imports_none_of_them() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output
    loaded = _imported_by(["--help"])
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_history_of_a_local_store_loads_neither_sqlalchemy_docker_nor_the_web(
    tmp_path: Path,
) -> None:
    state = tmp_path / "s.db"
    with Store(str(state)) as store:
        store.record_operation("sync", "web", "x", "Succeeded", trigger="cli")
    loaded = _imported_by(["history", "--env", "x", "--state", str(state), "--json"])
    assert not loaded & {"sqlalchemy", "alembic", "fastapi", "docker", "regopy", "uvicorn"}


def test_history_of_a_store_not_yet_there_opens_it_with_sqlalchemy(tmp_path: Path) -> None:
    loaded = _imported_by(["history", "--env", "x", "--state", f"{tmp_path}/s.db", "--json"])
    assert "sqlalchemy" in loaded  # Store creates and migrates it, as before
    assert (tmp_path / "s.db").is_file()
    assert not loaded & {"fastapi", "docker", "regopy", "uvicorn", "apprise"}


@pytest.mark.parametrize(
    "args",
    [
        ["render", "--env", "x", "--repo", "/nonexistent"],
        ["validate", "--repo", "/nonexistent"],
        ["policy", "check", "--env", "x", "--repo", "/nonexistent"],
    ],
    ids=["render", "validate", "policy-check"],
)
def test_the_pre_commit_commands_need_neither_docker_nor_the_store(args: list[str]) -> None:
    loaded = _imported_by(args)
    assert not loaded & {"fastapi", "sqlalchemy", "alembic", "docker", "uvicorn", "apprise"}


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["nosuch"])
    assert result.exit_code == 2
    assert "No such command 'nosuch'" in result.output


def test_policies_are_evaluated_in_the_sandbox_child_and_regopy_stays_out_of_the_cli(
    tmp_path: Path,
) -> None:
    """The example repository has policies/*.rego: validate evaluates them (in the Rego
    sandbox's child), and the command's own process never loads rego-cpp (~10 MB)."""
    repo = tmp_path / "repo"
    assert CliRunner().invoke(cli, ["init", str(repo), "--no-git"]).exit_code == 0
    assert list((repo / "policies").glob("*.rego"))
    assert CliRunner().invoke(cli, ["validate", "--repo", str(repo)]).exit_code == 0
    loaded = _imported_by(["validate", "--repo", str(repo)])
    assert "gitswarm" in loaded and "regopy" not in loaded


def test_status_loads_the_store_but_not_docker_py_the_web_metrics_or_rego(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """status needs the store, the render and the engine's answers; it reads the engine
    over its unix socket with the standard library (swarm/engine.py), so docker-py and
    requests stay out, as do the agent's metrics (prometheus_client), the web stack and
    rego-cpp (the sandbox's child has it)."""
    repo = tmp_path / "repo"
    assert CliRunner().invoke(cli, ["init", str(repo)]).exit_code == 0
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    args = ["status", "--env", "development", "--repo", str(repo), "--state", f"{tmp_path}/s.db"]
    loaded = _imported_by(args)
    assert "sqlalchemy" in loaded  # a new store: only Store creates it
    assert not loaded & {"docker", "requests", "urllib3", "rich"}
    assert not loaded & {"prometheus_client", "fastapi", "uvicorn", "regopy", "apprise"}


def test_status_of_a_local_store_loads_no_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A current local store is read through store/quick.py (sqlite3): status's import of
    SQLAlchemy was a third of the command; what it shows is unchanged
    (tests/unit/test_store_quick.py: the same queries, the same records)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    assert CliRunner().invoke(cli, ["init", str(repo)]).exit_code == 0
    state = tmp_path / "s.db"
    with Store(str(state)) as store:
        store.set_status("medianest", "development", sync="Synced", health="Healthy")
    args = ["status", "--env", "development", "--repo", str(repo), "--state", str(state)]
    loaded = _imported_by([*args, "--json"])
    assert not loaded & {"sqlalchemy", "alembic", "prometheus_client", "fastapi", "regopy"}
