"""`gitswarm promote` of the example repository: development -> staging -> production
through a real Git remote, on the real swarm, with the trailers and the history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from gitswarm.model.account import RoleBinding
from gitswarm.store import Store
from harness.gitserve import GitRemote
from tests.conftest import Cleaner
from tests.gitops import Cli
from tests.integration.promotion_rig import APP, ExampleRemote, example_remote, remove_stacks
from tests.integration.swarm_helpers import image_of

pytestmark = pytest.mark.swarm


@pytest.fixture()
def example(
    cli: Cli, git_remote: GitRemote, tmp_path: Path, stack_name: str, cleaner: Cleaner,
    registry: str,
) -> Iterator[ExampleRemote]:  # fmt: skip
    yield example_remote(cli, git_remote, tmp_path, stack_name)
    remove_stacks(cleaner, stack_name)


def trailers(example: ExampleRemote, rev: str = "HEAD") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    text = example.remote_git("log", "-1", "--format=%(trailers:only,unfold)", rev)
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        out.setdefault(key, []).append(value)
    return out


def test_example_promotes_development_to_staging_to_production(
    example: ExampleRemote,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example.set_promotion("production", {"approvals": 2, "gates": {"window": True}})
    example.set_env_var("development", "APP_VERSION", "1.1.0", "development runs 1.1.0")
    for env in ("development", "staging", "production"):
        result = example.run("sync", "--env", env)
        assert result.exit_code == 0, result.output
    dev_rev = example.json("status", "--env", "development")["statuses"][0]["deployed"]

    monkeypatch.setenv("GITSWARM_ACTOR", "carol")
    result = example.run("promote", "--from", "development", "--to", "staging")
    assert result.exit_code == 0, result.output
    assert "Committed" in result.output and "gate source-healthy: pass" in result.output
    head = example.remote_git("rev-parse", "HEAD")
    found = trailers(example)
    assert found["Promoted-From"] == [f"development@{dev_rev}"]
    assert found["Promoted-Images"] == [f"{APP}:1.1.0"]
    assert found["Gate-source-healthy"] == ["pass"]
    assert found["Gate-policy"] == ["pass"] and found["Requested-By"] == ["carol"]
    changed = example.remote_git("show", "--format=", "--name-only", head).split()
    assert changed == ["environments/staging/.env"]
    result = example.run("sync", "--env", "staging")
    assert result.exit_code == 0, result.output
    assert ":1.1.0" in image_of(docker_client, f"{example.stack_of('staging')}_medianest-app")
    ops = example.cli.json("history", "--env", "staging")["operations"]
    promoted = [o for o in ops if o["kind"] == "promotion"]
    assert promoted and promoted[0]["result"] == "Succeeded"
    assert promoted[0]["revision"] == head and promoted[0]["actor"] == "carol"

    # production needs two approvers who are not the requester.
    pending = example.json("promote", "--from", "staging", "--to", "production")
    assert pending["_exit_code"] == 0, pending
    assert pending["result"]["result"] == "Pending"
    pid = str(pending["result"]["promotion_id"])
    assert example.remote_git("rev-parse", "HEAD") == head  # nothing committed yet
    # Approvals are decided as users of the store, with the approver role in production.
    with Store(str(example.cli.state)) as store:
        for name in ("carol", "alice", "bob"):
            store.add_user(name, "$argon2id$v=19$unused", [RoleBinding("approver")])
    refused = example.run("approve", pid)
    assert refused.exit_code == 2 and "cannot approve" in refused.output
    monkeypatch.setenv("GITSWARM_ACTOR", "mallory")
    refused = example.run("approve", pid)
    assert refused.exit_code == 2 and "mallory is not a user of the state store" in refused.output
    monkeypatch.setenv("GITSWARM_ACTOR", "alice")
    first = example.json("approve", pid)
    assert first["_exit_code"] == 0 and first["result"]["result"] == "Approved", first
    assert example.remote_git("rev-parse", "HEAD") == head
    again = example.run("approve", pid)
    assert again.exit_code == 2 and "already decided" in again.output
    monkeypatch.setenv("GITSWARM_ACTOR", "bob")
    second = example.json("approve", pid)
    assert second["result"]["result"] == "Committed", second
    found = trailers(example)
    assert sorted(found["Approved-By"]) == ["alice", "bob"]
    assert found["Promoted-From"][0].startswith("staging@")
    assert found["Requested-By"] == ["carol"] and found["Promotion-Id"] == [pid]
    result = example.run("sync", "--env", "production")
    assert result.exit_code == 0, result.output
    assert ":1.1.0" in image_of(docker_client, f"{example.stack_of('production')}_medianest-app")
    statuses = example.json("status")["statuses"]
    assert {(s["env"], s["sync"], s["health"]) for s in statuses} == {
        (env, "Synced", "Healthy") for env in ("development", "staging", "production")
    }
    log = example.remote_git("log", "--format=%s", "-3")
    assert "Promote medianest to production" in log and "Promote medianest to staging" in log
