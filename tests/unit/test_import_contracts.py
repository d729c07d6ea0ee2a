"""The layer contracts of pyproject.toml hold, and they do catch a forbidden import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_contracts_are_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_docker_in_render_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "gitswarm", tmp_path / "gitswarm", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "gitswarm" / "render" / "sneaky.py"
    bad.write_text("import docker\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "gitswarm.render.sneaky -> docker" in result.stdout
