"""The agent config is read in one place (source/agentconfig.py): whoever reads it --
`gitswarm serve`, `gitswarm promote/approve --config`, the commands that deploy -- a
wrong value is named with the file, the line of its key and what to do, never a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gitswarm.cli.operator import load_operator
from gitswarm.cli.serve import load_serve_config
from gitswarm.errors import ConfigError
from gitswarm.promote.operator import load_operator_settings, operator_settings
from gitswarm.source.agentconfig import MAX_BYTES, read_agent_config

GITSWARM = shutil.which("gitswarm", path=str(Path(sys.executable).parent)) or "gitswarm"


def _agent_yml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yml"
    path.write_text(text)
    return path


def _both(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    """The messages of the promotion reader and of `gitswarm serve`'s for one file."""
    messages = []
    for read in (
        lambda: load_operator_settings(path, environ or {}),
        lambda: load_serve_config(path, {"repo": "/srv/x"}, environ or {}),
    ):
        with pytest.raises(ConfigError) as info:
            read()
        messages.append(info.value.message)
    return messages


BAD_PROMOTION = [
    (
        "repo: /srv/x\npromotion:\n  automation: true\n  interval: 0\n",
        "{path}:4: promotion.interval must be a number of seconds, at least 1",
    ),
    (
        "promotion:\n  interval: .nan\n",
        "{path}:2: promotion.interval must be a number of seconds, at least 1",
    ),
    (
        "promotion:\n  automation: yes\n",
        "{path}:2: promotion.automation must be true or false",
    ),
    (
        "promotion:\n  interval: 30\n  comands: {}\n",
        "{path}:3: promotion.comands: unknown setting 'comands' "
        "(known: automation, interval, commands, http_allow, registries)",
    ),
    (
        "promotion:\n  commands:\n    perf: {argv: [/bin/true]}\n"
        "    scan:\n      argv: [/bin/true]\n      timeout: [1]\n",
        "{path}:6: promotion.commands.scan.timeout: [1] is not a duration; "
        "write it like 30s, 10m, 12h or 3d",
    ),
    (
        "promotion:\n  commands:\n    scan:\n      argv: scan --all\n",
        "{path}:4: promotion.commands.scan.argv must be a non-empty list of strings (no shell)",
    ),
    (
        "promotion:\n  commands:\n    scan:\n      argv: [/bin/true]\n      shell: yes\n",
        "{path}:5: promotion.commands.scan.shell: unknown key 'shell' (known: argv, env, timeout)",
    ),
    (
        "promotion:\n  registries:\n    ghcr.io:\n      username: ci\n      password_env: [1]\n",
        "{path}:5: promotion.registries.ghcr.io.password_env must name an environment variable",
    ),
    (
        "promotion:\n  registries:\n    ghcr.io: {username: ci, password_env: NOT_SET_HERE}\n",
        "{path}:3: promotion.registries.ghcr.io.password_env: environment variable "
        "NOT_SET_HERE is not set",
    ),
    (
        "promotion:\n  http_allow:\n    - http://127.0.0.1:8080/\n    - 169.254.169.254\n",
        "{path}:4: promotion.http_allow[1]: '169.254.169.254' is link-local (where cloud "
        "metadata answers): gates never reach it",
    ),
    (
        "promotion: [automation]\n",
        "{path}:1: promotion must be a mapping with automation, interval, commands, "
        "http_allow, registries",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_PROMOTION)
def test_a_bad_promotion_setting_names_file_line_and_key_for_every_reader(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _agent_yml(tmp_path, text)
    assert _both(path) == [expected.format(path=path)] * 2


BAD_FILES = [
    ("promotion: {\n", "{path}:2:1: the agent config is not valid YAML: expected the node"),
    (
        "promotion:\n  interval: 5\n  interval: 6\n",
        "{path}:3:3: the agent config is not valid YAML: mapping key 'interval' already "
        "defined at line 2",
    ),
    ("- a\n- b\n", "{path}:1: the agent config must be a mapping of settings"),
    ("[" * 500 + "\n", "{path}:1:"),
    (
        "promotion:\n  ? [a]\n  : 1\n",
        "{path}:2:5: the agent config is not valid YAML: a mapping key",
    ),
    ("promotion: \x00\n", "{path}:1:12: the agent config is not valid YAML: a NUL byte"),
]


@pytest.mark.parametrize(("text", "start"), BAD_FILES)
def test_a_file_that_is_no_agent_config_is_named_with_its_line(
    tmp_path: Path, text: str, start: str
) -> None:
    path = _agent_yml(tmp_path, text)
    for message in _both(path):
        assert message.startswith(start.format(path=path)), message
    with pytest.raises(ConfigError) as info:
        load_operator(path, {"GITSWARM_KEYS_DIR": str(tmp_path)})
    assert info.value.message.startswith(start.format(path=path))


def test_a_missing_or_huge_file_says_what_to_check(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as info:
        read_agent_config(missing)
    assert info.value.message == (
        f"{missing}: cannot read the agent config: No such file or directory; "
        "check the path given to --config or $GITSWARM_CONFIG"
    )
    huge = _agent_yml(tmp_path, "#" * (MAX_BYTES + 1))
    with pytest.raises(ConfigError, match=r"the agent config is over 1 MiB"):
        read_agent_config(huge)


ODD_VALUES: list[Any] = [None, 0, -1, 1.5, True, "x", "", [], [1], {}, {"a": 1}, [{"a": [1]}]]


def test_no_value_in_promotion_makes_anything_but_a_config_error() -> None:
    keys = ("automation", "interval", "commands", "http_allow", "registries")
    shapes: list[Any] = [
        *ODD_VALUES,
        *({"scan": v} for v in ODD_VALUES),
        *({"scan": {k: v}} for v in ODD_VALUES for k in ("argv", "timeout", "env")),
        *(
            {"r": {k: v}}
            for v in ODD_VALUES
            for k in ("username", "password_env", "password_file", "endpoint", "insecure")
        ),
    ]
    for key in keys:
        for value in shapes:
            try:
                operator_settings({key: value}, {})
            except ConfigError as exc:
                assert exc.message.startswith(f"promotion.{key}"), exc.message


def test_the_promote_command_prints_file_and_line_without_a_traceback(tmp_path: Path) -> None:
    path = _agent_yml(tmp_path, "promotion:\n  commands:\n    scan: {argv: scan}\n")
    result = subprocess.run(
        [GITSWARM, "promote", "--repo", str(tmp_path / "none"), "--config", str(path),
         "--from", "staging", "--to", "production"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "GITSWARM_STATE": str(tmp_path / "state.db")},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error [ConfigInvalid]: {path}:3: promotion.commands.scan.argv must be a "
        "non-empty list of strings (no shell)"
    )
    assert "Traceback" not in result.stdout + result.stderr
