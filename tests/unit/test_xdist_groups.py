"""tests/xdist_groups.py: under ``-n 2 --dist loadgroup`` every test of an ``xdist_group``
runs on one worker (on pytest 9.2 with xdist 3.8 they were spread over all workers, and
each worker started a 3-node cluster of its own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """\
from tests.xdist_groups import LoadGroupIds


def pytest_configure(config):
    config.pluginmanager.register(LoadGroupIds(), "gitswarm-xdist-groups")


def pytest_collection_modifyitems(config, items):  # like tests/conftest.py: marks by keyword
    import pytest

    for item in items:
        if "multinode" in item.keywords:
            item.add_marker(pytest.mark.xdist_group("cluster"))
"""

TESTS = """\
import os
import time
from pathlib import Path

import pytest

OUT = Path(__file__).parent / "ran"


def _note(name):
    (OUT / f"{name}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}").touch()
    time.sleep(0.2)  # long enough that an idle worker would take the next test


@pytest.mark.multinode
@pytest.mark.parametrize("i", range(4))
def test_on_the_cluster(i):
    _note(f"cluster{i}")


@pytest.mark.xdist_group("other")
def test_marked_directly():
    _note("direct")


@pytest.mark.parametrize("i", range(6))
def test_anywhere(i):
    _note(f"free{i}")
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest on the tests above, in a folder of their own, with the plugin registered."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_grouped.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    multinode: the cluster\n")
    (tmp_path / "ran").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", *args],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "11 passed" in proc.stdout, proc.stdout
    return proc


def test_every_test_of_a_group_runs_on_one_worker(tmp_path: Path) -> None:
    proc = _run(tmp_path, "-n", "2", "--dist", "loadgroup")
    ran = [p.name.split("-") for p in (tmp_path / "ran").iterdir()]
    on_cluster = [worker for name, worker in ran if name.startswith("cluster")]
    assert len(on_cluster) == 4
    assert len(set(on_cluster)) == 1, sorted(ran)
    assert "test_on_the_cluster[0]@cluster" in proc.stdout
    assert "test_marked_directly@other" in proc.stdout
    # Ungrouped tests keep their ids (and are shared out).
    assert "PASSED test_grouped.py::test_anywhere[0]\n" in proc.stdout


def test_an_ungrouped_run_keeps_every_node_id(tmp_path: Path) -> None:
    """Without xdist nothing is renamed."""
    proc = _run(tmp_path, "-p", "no:xdist")
    assert "PASSED test_grouped.py::test_on_the_cluster[0]\n" in proc.stdout
    assert "@cluster" not in proc.stdout
