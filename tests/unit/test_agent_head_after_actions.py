"""The head the agent shows (statuses()["head"], the dashboard's "Git head") follows Git
as soon as the agent deploys or commits something newer, not at its next poll:

- a user's sync of a commit the agent's last poll did not see (the dashboard's sync
  deploys the head its dry run read) makes the agent look at Git at once;
- a promotion the API commits does the same (serve.look_at_git), and the automated
  target deploys it without waiting for a poll.

Neither records anything more than the sync and the promotion themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitswarm.cli.serve import look_at_git
from gitswarm.model.agent import TriggerRequest
from gitswarm.promote.service import PromotionService
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service
from tests.unit.promotion_rig import make_rig


def _head_shown(agent: Agent, app: str, env: str) -> str | None:
    [status] = [s for s in agent.statuses() if (s["app"], s["env"]) == (app, env)]
    return status["head"]


def test_a_user_sync_of_a_newer_commit_shows_the_new_head_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "headsync")
    repo.compose({"web": service("127.0.0.1:5000/busybox:1")})
    first = repo.commit("v1")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        agent = Agent(
            source=source,
            store=store,
            reconciler=Reconciler(source, store, lambda _t: swarm),
            settings=AgentSettings(events=False),
        )
        agent.git.check(TriggerRequest("poll"))
        agent.run_pending()
        assert _head_shown(agent, "app", "dev") == first

        repo.compose({"web": service("127.0.0.1:5000/busybox:2")})
        second = repo.commit("v2")  # no poll sees it: the dashboard's dry run did
        agent.trigger(TriggerRequest("user", app="app", env="dev", revision=second, actor="dora"))
        agent.run_pending()

        status = store.get_status("app", "dev")
        assert status is not None and status.revision == second
        assert _head_shown(agent, "app", "dev") == second
        assert [s["deployed"] for s in agent.statuses()] == [second]
        syncs = [o for o in store.history(app="app", env="dev", limit=10) if o.kind == "sync"]
        assert [(o.revision, o.trigger) for o in syncs] == [(second, "user"), (first, "poll")]
        assert "inputs unchanged" not in status.message  # the sync's own status stays


def test_a_promotion_committed_through_the_service_is_the_head_and_deploys_at_once(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path)
    try:
        agent = Agent(
            source=rig.reconciler.source,
            store=rig.store,
            reconciler=rig.reconciler,
            settings=AgentSettings(events=False),
        )
        agent.git.check(TriggerRequest("poll"))
        agent.run_pending()
        before = rig.head()
        assert _head_shown(agent, "web", "prod") == before

        service = PromotionService(rig.promoter(), committed=lambda o: look_at_git(agent, o))
        outcome = service.promote("web", "dev", "prod", actor="carol")
        assert outcome.result == "Committed", outcome.message
        agent.run_pending()  # what the agent's threads run at once: no poll in between

        assert outcome.commit == rig.head() != before
        assert _head_shown(agent, "web", "prod") == outcome.commit
        status = rig.store.get_status("web", "prod")
        assert status is not None and status.revision == outcome.commit
        assert rig.tag_in("prod") == "1.1.0"
    finally:
        rig.store.close()
