"""Bad input through the command line: every message names the file and line and says
what is actually wrong (issue 12, "messages that mislead"), exit 2, no traceback.

Each case breaks the example repository of `gitswarm init` the way a user would and runs
the real CLI on it; the expected lines are the exact text a terminal shows.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli

BASE = "base/docker-compose.yml"
DEV_SECRET = "environments/development/secrets/jwt_secret.age"


@pytest.fixture()
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["init", str(repo)])
    assert result.exit_code == 0, result.output
    return repo


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def _edit(repo: Path, path: str, old: str, new: str) -> None:
    file = repo / path
    text = file.read_text()
    assert old in text, f"{old!r} not in {path}"
    file.write_text(text.replace(old, new, 1))


def _commit(repo: Path) -> None:
    git = ["git", "-C", str(repo), "-c", "user.name=Ada", "-c", "user.email=ada@example.test"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "break it"], check=True)


def _shows(problem: str, out: str, err: str) -> bool:
    """``problem`` is a line of its own: validate prints problems on stdout, every other
    command under its ``error [Reason]:`` line on stderr."""
    return problem in out.splitlines() or f"  {problem}" in err.splitlines()


def _line_of(repo: Path, path: str, text: str) -> int:
    lines = (repo / path).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


# --- gitswarm.yml that cannot be read: the reason, in every command --------------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6)
)

UNREADABLE_CONFIGS = [
    ("", "gitswarm.yml:1:1: must be a mapping of settings, but is empty [config-schema]"),
    (
        "- a\n- b\n",
        "gitswarm.yml:1:1: must be a mapping of settings, but is a list [config-schema]",
    ),
    (
        "project: [x\n",
        "gitswarm.yml:2:1: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 1, column 10) [yaml]",
    ),
    (
        "project: a\nproject: b\n",
        "gitswarm.yml:2:1: mapping key 'project' already defined at line 1 [yaml]",
    ),
    (ALIAS_BOMB, "gitswarm.yml:1:32: the document expands to more than 200000 nodes [yaml]"),
]

COMMANDS = [
    ("render", "--env", "development"),
    ("policy", "check", "--env", "development"),
    ("validate",),
    ("sync", "--env", "development", "--dry-run"),
    ("diff", "--env", "development"),
    ("status",),
]


@pytest.mark.parametrize(("text", "expected"), UNREADABLE_CONFIGS)
def test_an_unreadable_gitswarm_yml_gets_its_reason_in_every_command(
    example: Path, text: str, expected: str
) -> None:
    (example / "gitswarm.yml").write_text(text)
    _commit(example)  # sync, diff and status read the committed revision
    # expanding the alias bomb to its limit takes a second; the commands share load_config
    for command in COMMANDS if text != ALIAS_BOMB else COMMANDS[:2]:
        code, out, err = _run(*command, "--repo", str(example))
        assert code == 2, (command, out, err)
        assert _shows(expected, out, err), (command, out, err)


# --- a NUL byte: the real file name, line and column -------------------------------------


def test_a_nul_byte_names_the_file_line_and_column(example: Path) -> None:
    config = example / "gitswarm.yml"
    config.write_bytes(config.read_bytes().replace(b"project: medianest", b"project: medi\0anest"))
    line = _line_of(example, "gitswarm.yml", "project: medi")
    code, _, err = _run("render", "--env", "development", "--repo", str(example))
    assert code == 2
    assert err.splitlines() == [
        "error [ConfigInvalid]: the repository settings are not valid:",
        f"  gitswarm.yml:{line}:14: a NUL byte (is it a binary file?) is not allowed in YAML; "
        "remove it [yaml]",
    ]
    assert "<file>" not in err


def test_a_control_character_in_a_compose_file_names_it(example: Path) -> None:
    _edit(example, BASE, "LOG_LEVEL: info", "LOG_LEVEL: in\x07fo")
    line = _line_of(example, BASE, "LOG_LEVEL: in")
    code, out, _ = _run("validate", "--env", "development", "--repo", str(example))
    assert code == 2
    assert (
        f"{BASE}:{line}:20: the character U+0007 is not allowed in YAML; remove it [yaml]"
        in out.splitlines()
    )
