"""Interpolation, property-tested against the real ``docker stack config`` (Docker CLI 28,
no daemon), as tests/integration/test_render_parity.py does case by case:

- generated values (literals with ``$``, braces and operators, ``$$``, ``${VAR}``,
  ``${VAR:-d}``, ``${VAR-d}``, ``${UNSET:-d}``) in ``environment``, ``labels`` and
  ``command``, with generated ``.env`` values, render in gitswarm exactly as the CLI
  interpolates them with those variables in its environment;
- gitswarm's deployable file, given back to the CLI with no variables at all, reads as
  the render: every ``$`` escaped exactly once (what ``docker stack deploy`` reads).

Only where gitswarm deliberately differs from the CLI (an unset variable without a
default, ``$VAR-x``, ``${VAR-a:-b}``; see render/interpolate.py) are values left out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gitswarm.render import render_stack, to_yaml
from gitswarm.repo import load_config
from gitswarm.source.tree import WorkTree
from tests.integration.test_render_parity import DOCKER, docker_stack_config
from tests.properties import examples
from tests.unit.generated_stacks import (
    ENV_VALUE,
    IDENTITY,
    LABEL_KEY,
    VAR_NAME,
    Text,
    text_parts,
)

pytestmark = pytest.mark.skipif(DOCKER is None, reason="needs a Docker CLI with `stack config`")

# ``${V-a:-b}``: the CLI reads the name "V-a" with the default "b" (render/interpolate.py)
_CLI_READS_ANOTHER_OPERATOR = re.compile(r"\$\{[A-Z0-9_]+-[^}]*:[-?]")


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, Text], list[Text]]:
    variables = draw(st.dictionaries(VAR_NAME, ENV_VALUE, max_size=4))
    values = text_parts(variables)
    labels = draw(st.dictionaries(LABEL_KEY, values, min_size=1, max_size=4))
    command = draw(st.lists(values, min_size=1, max_size=4))
    for text in [*labels.values(), *command]:
        assume(not _CLI_READS_ANOTHER_OPERATOR.search(text.written))
    return variables, labels, command


def _write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


@settings(max_examples=examples(25))
@given(cases())
def test_gitswarm_interpolates_as_docker_stack_config_does(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[dict[str, str], dict[str, Text], list[Text]],
) -> None:
    variables, labels, command = case
    root = tmp_path_factory.mktemp("repo")
    service = {
        "image": "nginx:1.25",
        "environment": {f"E{i}": t.written for i, t in enumerate(labels.values())},
        "labels": {k: t.written for k, t in labels.items()},
        "command": [t.written for t in command],
    }
    config = {
        "project": "p",
        "application": {"name": "app", "stack": "p-{env}", "files": ["stack/c.yml"]},
        "environments": {"test": {"secrets": {"recipients": [IDENTITY.recipient]}}},
    }
    _write(
        root,
        {
            "gitswarm.yml": json.dumps(config),
            "stack/c.yml": json.dumps({"services": {"web": service}}, ensure_ascii=False),
            "environments/test/.env": "".join(f"{k}={v}\n" for k, v in variables.items()),
        },
    )
    tree = WorkTree(root)
    desired = render_stack(tree, load_config(tree), "app", "test", IDENTITY)
    environ = {**variables, "GITSWARM_ENV": "test", "GITSWARM_APP": "app"}
    environ["GITSWARM_STACK"] = "p-test"
    theirs: Any = docker_stack_config(root, ["stack/c.yml"], environ)["services"]["web"]
    ours = desired.services["web"]
    for key in ("environment", "labels", "command"):
        assert ours.get(key) == theirs.get(key), key
    assert ours["command"] == [t.meant for t in command]
    assert ours["labels"] == {k: t.meant for k, t in labels.items()}

    deploy = tmp_path_factory.mktemp("deploy")
    (deploy / "stack.yml").write_text(to_yaml(desired), encoding="utf-8")
    read_back = docker_stack_config(deploy, ["stack.yml"], {})
    assert read_back == json.loads(json.dumps(desired.compose))
