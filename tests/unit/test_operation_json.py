"""One JSON form of an operation (model/operation.py ``Operation.as_dict``): the API,
``gitswarm history --json`` and ``gitswarm history export`` write the same fields, so a
script reading one reads the others (each used to build its own, with different fields)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.errors import Reason
from gitswarm.model.operation import DeployedCommit, ServiceChange
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

WHEN = dt.datetime(2026, 6, 1, 9, 30, tzinfo=dt.UTC)


def test_api_history_json_and_export_write_the_same_operation(tmp_path: Path) -> None:
    repo = GitOpsRepo(tmp_path / "repo", "ops")
    repo.compose({"web": service()})
    repo.commit("one")
    state = tmp_path / "state.db"
    with Store(str(state)) as store:
        op_id = store.start_operation(
            "sync", "app", "dev", holder="host:1", trigger="api", actor="ann",
            revision="b" * 40, previous_revision="a" * 40, author="Ann", commit_time=WHEN,
        )  # fmt: skip
        store.finish_operation(
            op_id, "Failed", Reason.TASKS_FAILING, "web: failing",
            [ServiceChange("web", "changed", ("image",))],
            [DeployedCommit("b" * 40, WHEN, "fix: web")],
        )  # fmt: skip
        source = RepoSource.open(str(repo.path))
        swarm = FakeSwarm()
        agent = Agent(
            source=source,
            store=store,
            reconciler=Reconciler(source, store, lambda _t: swarm),
            settings=AgentSettings(events=False),
        )
        [api] = agent.history("app", "dev", 10)
        stored = store.get_operation(op_id)  # with its commits (a listing leaves them out)
        assert agent.operation(op_id) == stored.as_dict()

    runner = CliRunner()
    shown = runner.invoke(cli, ["history", "--env", "dev", "--json", "--state", str(state)])
    assert shown.exit_code == 0, shown.output
    [listed] = json.loads(shown.stdout)["operations"]
    exported = runner.invoke(cli, ["history", "export", "--state", str(state)])
    assert exported.exit_code == 0, exported.output
    [line] = [json.loads(x) for x in exported.stdout.splitlines()]
    assert line.pop("record") == "operation"

    assert api == {**stored.as_dict(), "commits": []}
    assert set(listed) == set(api) == set(line)
    for key in ("id", "kind", "reason", "previous_revision", "commit_time", "changes", "holder"):
        assert listed[key] == api[key] == line[key], key
    assert api["reason"] == "TasksFailing" and api["commit_time"] == WHEN.isoformat()
    assert line["commits"] == [
        {"sha": "b" * 40, "committed_at": WHEN.isoformat(), "subject": "fix: web"}
    ]
