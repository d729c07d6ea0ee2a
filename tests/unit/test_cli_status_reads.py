"""``gitswarm status`` reads the repository's settings once per revision: the command's
own listing of apps and each app's render share the Reconciler's read (issue 13: reading
gitswarm.yml and applications/*.yml twice was a fifth of the command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.model.config import RepoConfig
from gitswarm.model.tree import Tree
from gitswarm.repo import load_config
from gitswarm.swarm.fake import FakeSwarm
from gitswarm.swarm.pool import SwarmPool


class ClosingFake(FakeSwarm):
    def close(self) -> None:
        pass


def test_status_reads_the_settings_of_the_head_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = tmp_path / "repo"
    assert CliRunner().invoke(cli, ["init", str(repo)]).exit_code == 0
    reads: list[str | None] = []

    def counting(tree: Tree) -> RepoConfig:
        reads.append(tree.revision)
        return load_config(tree)

    for where in ("gitswarm.reconcile.settings.load_config", "gitswarm.repo.load_config"):
        monkeypatch.setattr(where, counting)
    fake: Any = ClosingFake()
    monkeypatch.setattr("gitswarm.swarm.pool.SwarmPool", lambda **_kw: SwarmPool(lambda _t: fake))
    args = ["status", "--env", "development", "--repo", str(repo), "--state", f"{tmp_path}/s.db"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    statuses = cast(list[dict[str, Any]], json.loads(result.output)["statuses"])
    assert [s["app"] for s in statuses] == ["medianest"]
    assert statuses[0]["sync"] == "OutOfSync"  # rendered and planned: nothing deployed yet
    assert len(reads) == 1
