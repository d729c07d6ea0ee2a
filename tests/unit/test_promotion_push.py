"""The promotion commit is pushed; a push that loses a race is redone on the new head
and pushed again, never forced (a real bare remote over file://)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitswarm.promote.pipeline import PromoteRequest
from gitswarm.reconcile.apply import Clock
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from tests.unit.promotion_rig import Rig, make_rig


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=R", "-c", "user.email=r@r", *args],
        cwd=cwd, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = make_rig(tmp_path)
    rig.settings({})
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(rig.path), str(bare)], check=True)
    source = RepoSource.open(f"file://{bare}", cache=tmp_path / "cache")
    source.fetch()
    rig.reconciler = Reconciler(source, rig.store, lambda _t: rig.swarm, clock=Clock(now=rig.now))
    rig.sync("dev")
    rig.sync("prod")
    try:
        yield rig
    finally:
        rig.store.close()


def test_a_push_that_loses_a_race_is_redone_on_the_new_head(rig: Rig, tmp_path: Path) -> None:
    other = tmp_path / "other"
    remote = rig.reconciler.source.remote
    assert remote is not None
    subprocess.run(["git", "clone", "-q", remote, str(other)], check=True)
    raced: list[str] = []

    def racing_commit(attempt: int) -> None:
        if attempt == 0:
            (other / "README.md").write_text("someone else pushed first\n")
            git(other, "add", "-A")
            git(other, "commit", "-qm", "a racing commit")
            git(other, "push", "-q", "origin", "HEAD:main")
            raced.append(git(other, "rev-parse", "HEAD"))

    promoter = rig.promoter(before_push=racing_commit)
    outcome = promoter.promote(PromoteRequest("web", "dev", "prod", actor="carol"))
    assert outcome.result == "Committed", outcome.message
    git(other, "pull", "-q", "--ff-only")
    log = git(other, "log", "--format=%H %s", "-2").splitlines()
    assert log[0].split()[0] == outcome.commit and "Promote web to prod" in log[0]
    assert log[1].split()[0] == raced[0]  # on top of it, nothing lost, nothing forced
    env = git(other, "show", "HEAD:environments/prod/.env")
    assert "TAG=1.1.0" in env
