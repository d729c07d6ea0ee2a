"""Two syncs of the same app and environment at once: one deploys, the other is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitops import Cli, GitOpsRepo, service

pytestmark = pytest.mark.swarm


def test_concurrent_syncs_never_both_deploy(
    cli: Cli, tmp_path: Path, stack_name: str, registry: str
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name, sync={"prune": True, "health_timeout": 60})
    repo.compose({"web": service()})
    repo.commit("one")
    procs = [cli.subprocess("sync", "--env", "dev", "--repo", str(repo.path)) for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    loser = next(out + err for code, out, err in results if code == 1)
    assert "Locked" in loser and "sync/app/dev" in loser and "held by" in loser
    deploys = [
        o for o in cli.json("history", "--env", "dev")["operations"] if "deployed:" in o["message"]
    ]
    assert len(deploys) == 1
