"""One way to render and judge a tree (reconcile/rendering.py): what `gitswarm render`
and `gitswarm policy check --revision` print is what the Reconciler deploys and judges
at that revision: the same stack file, the same policy results with the same
``input.commit``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.reconcile.sync import Reconciler
from gitswarm.render import to_yaml
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

AUTHOR_POLICY = (
    "package gitswarm.author\n\nimport rego.v1\n\n"
    'warn contains sprintf("committed by %s: %s", [input.commit.author, input.commit.message])'
    " if input.commit\n"
)


def _json(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_the_cli_and_the_reconciler_render_and_judge_a_revision_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service(), "worker": service(user="root")})
    repo.write("policies/author.rego", AUTHOR_POLICY)
    head = repo.commit("Two services and an author policy")
    repo.compose({"web": service()})  # uncommitted: --revision must not see it

    rendered = _json("render", "--env", "dev", "--repo", str(repo.path), "--revision", head)
    checked = _json("policy", "check", "--env", "dev", "--repo", str(repo.path), "--revision", head)

    store = Store(str(tmp_path / "state.db"))
    try:
        swarm = FakeSwarm()
        reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)
        agent = reconciler.render("app", "dev", head)
    finally:
        store.close()

    [stack] = rendered["stacks"]  # type: ignore[misc]
    assert stack["revision"] == head
    assert stack["yaml"] == to_yaml(agent.desired)
    assert set(agent.desired.services) == {"web", "worker"}
    [report] = checked["reports"]  # type: ignore[misc]
    assert agent.policy is not None
    assert report["results"] == agent.policy.to_dict()["results"]
    messages = [r["message"] for r in report["results"]]
    assert "rego:gitswarm.author: committed by Test Author: Two services and an author policy" in (
        messages
    )
