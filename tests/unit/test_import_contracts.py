"""The import contracts of pyproject.toml hold, and each one does catch a wrong import:
every case below adds one deliberate wrong import to a copy of the package and checks
that exactly the contract it is about breaks, naming the import."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

LAYERS = "Layers: edges -> reconcile -> pure core -> model/errors"
PURE_IO = "The pure core does no I/O: no Docker, Git, HTTP, database or subprocess"
EDGES = "I/O edges are siblings: swarm, source, store, notify, sandbox import none of the others"
PURE = "Pure siblings: plan, health, policy, dora import none of the others"
COMMANDS = "Commands are siblings: no cli/ command module imports another"
DOCKER = "Only swarm/ talks to Docker: nothing else imports docker"
DATABASE = "Only store/ talks to the database: nothing else imports sqlalchemy or alembic"
SANDBOX = "The Rego sandbox's child loads the evaluator and nothing that does I/O"
ALL = (LAYERS, PURE_IO, EDGES, PURE, COMMANDS, DOCKER, DATABASE, SANDBOX)


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )


def _verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT / BROKEN, from the summary lines."""
    found = dict(re.findall(r"^(.+?) (KEPT|BROKEN)$", output, flags=re.MULTILINE))
    assert set(found) == set(ALL), output
    return found


def test_contracts_are_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(_verdicts(result.stdout).values()) == {"KEPT"}


@pytest.mark.parametrize(
    ("module", "line", "contracts", "reported"),
    [
        (
            "render/sneaky.py",
            "import docker",
            (PURE_IO, DOCKER),
            "gitswarm.render.sneaky -> docker",
        ),
        ("reconcile/sneaky.py", "import docker", DOCKER, "gitswarm.reconcile.sneaky -> docker"),
        (
            "api/sneaky.py",
            "from sqlalchemy import select",
            DATABASE,
            "gitswarm.api.sneaky -> sqlalchemy",
        ),
        ("reconcile/sneaky.py", "import alembic", DATABASE, "gitswarm.reconcile.sneaky -> alembic"),
        (
            "swarm/sneaky.py",
            "import gitswarm.store",
            EDGES,
            "gitswarm.swarm.sneaky -> gitswarm.store",
        ),
        (
            "policy/sneaky.py",
            "import gitswarm.plan",
            PURE,
            "gitswarm.policy.sneaky -> gitswarm.plan",
        ),
        (
            "sandbox/worker.py",
            "import subprocess",
            SANDBOX,
            "gitswarm.sandbox.worker -> subprocess",
        ),
        # the cycle this contract ended: cli/policy.py and cli/render.py imported each other
        (
            "cli/policy.py",
            "import gitswarm.cli.render",
            COMMANDS,
            "gitswarm.cli.policy -> gitswarm.cli.render",
        ),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contracts: str | tuple[str, ...], reported: str
) -> None:
    expected = {contracts} if isinstance(contracts, str) else set(contracts)
    shutil.copytree(
        ROOT / "gitswarm", tmp_path / "gitswarm", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "gitswarm" / module
    text = target.read_text() if target.exists() else ""
    target.write_text(f"{text}\n{line}\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    verdicts = _verdicts(result.stdout)
    broken_ones = {name for name, verdict in verdicts.items() if verdict == "BROKEN"}
    assert broken_ones == expected, result.stdout  # only the ones it is about
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert re.search(rf"-\s+{re.escape(reported)}", broken), broken
