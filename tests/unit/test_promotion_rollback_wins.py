"""Image automation commits the newest tag; after a rollback it leaves the app alone
(a hold) until a newer tag arrives or a person releases it. Registry: a MockTransport
here; the real registry and swarm: tests/integration/test_promotion_automation.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gitswarm.promote.automation import Action, Automation, deploy_requests
from gitswarm.promote.core.message import parse_trailers
from gitswarm.promote.registry import RegistryClient
from gitswarm.reconcile.rollback import RollbackRequest, rollback
from tests.unit.promotion_rig import REPO, Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = make_rig(tmp_path)
    try:
        yield rig
    finally:
        rig.store.close()


def automation(rig: Rig, tags: list[str]) -> Automation:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/shop/web/tags/list"
        return httpx.Response(200, json={"name": "shop/web", "tags": list(tags)})

    transport = httpx.MockTransport(handler)
    registry = RegistryClient(client=lambda: httpx.Client(transport=transport), min_interval=0)
    return Automation(rig.promoter(), registry)


def test_a_rollback_wins_over_image_automation_until_a_newer_tag(rig: Rig) -> None:
    rig.settings(
        {"image_automation": [{"repository": REPO, "policy": {"semver": {"range": ">=1.0.0"}},
                               "interval": "1s"}]},
        env="dev",
    )  # fmt: skip
    rig.sync("dev")
    tags = ["1.0.0", "1.1.0", "1.2.0", "latest"]
    auto = automation(rig, tags)
    actions = auto.tick()
    assert [(a.kind, a.env) for a in actions] == [("committed", "dev")], actions
    assert rig.tag_in("dev") == "1.2.0"
    message = rig.git("log", "-1", "--format=%B")
    assert message.startswith("Update web in dev: reg.local:5000/shop/web 1.2.0")
    assert parse_trailers(message)["Promoted-From"] == ["registry"]
    rig.sync("dev")

    rollback(rig.reconciler, RollbackRequest("web", "dev", previous=True, reason="too slow"))
    assert rig.tag_in("dev") == "1.1.0"
    rolled_back = rig.head()
    # Held before the rollback commit was pushed: no round can see one without the other.
    (hold,) = rig.store.holds("web", "dev")
    assert hold.to_revision == rolled_back
    rig.later(seconds=5)
    actions = auto.tick()
    assert "committed" not in [a.kind for a in actions], actions
    (hold,) = rig.store.holds("web", "dev")  # the round made no second one
    assert dict(hold.images) == {REPO: "1.2.0"}
    assert rig.head() == rolled_back and rig.tag_in("dev") == "1.1.0"
    for _ in range(3):  # nothing new in the registry: it stays rolled back
        rig.later(seconds=5)
        auto.tick()
    assert rig.head() == rolled_back

    tags.append("1.3.0")
    rig.later(seconds=5)
    actions = auto.tick()
    kinds = [a.kind for a in actions]
    assert "released" in kinds and "committed" in kinds, actions
    assert rig.tag_in("dev") == "1.3.0"
    assert rig.store.holds("web", "dev") == []
    (released,) = rig.store.holds("web", "dev", active=False)
    assert "new tag reg.local:5000/shop/web:1.3.0" in released.release_reason


def test_a_hold_released_by_a_person_lets_automation_go_on(rig: Rig) -> None:
    rig.settings(
        {"image_automation": [{"repository": REPO, "policy": {"numerical": {"order": "asc"}},
                               "filter_tags": {"pattern": r"^1\.(?P<minor>\d+)\.0$",
                                               "extract": "$minor"},
                               "interval": "1s"}]},
        env="dev",
    )  # fmt: skip
    rig.sync("dev")
    auto = automation(rig, ["1.1.0", "1.2.0"])
    auto.tick()
    rig.sync("dev")
    rollback(rig.reconciler, RollbackRequest("web", "dev", previous=True))
    rig.later(seconds=5)
    auto.tick()
    (hold,) = rig.store.holds("web", "dev")
    assert rig.tag_in("dev") == "1.1.0"
    assert rig.store.release_hold(hold.id, "alice", "fixed the slow query in the db")
    rig.later(seconds=5)
    actions = auto.tick()
    assert "committed" in [a.kind for a in actions], actions
    assert rig.tag_in("dev") == "1.2.0"


def test_automatic_promotion_does_not_fight_a_rollback(rig: Rig) -> None:
    rig.settings({"auto": True})
    rig.sync("dev")
    rig.sync("prod")
    auto = automation(rig, [])
    actions = auto.tick()
    assert [(a.kind, a.env) for a in actions] == [("committed", "prod")], actions
    assert rig.tag_in("prod") == "1.1.0"
    rig.sync("prod")
    rollback(rig.reconciler, RollbackRequest("web", "prod", previous=True))
    assert rig.tag_in("prod") == "1.0.0"
    head = rig.head()
    for _ in range(3):
        rig.later(minutes=11)  # past the retry pause of a failed try
        auto.tick()
    assert rig.head() == head
    (hold,) = rig.store.holds("web", "prod")
    assert dict(hold.images) == {REPO: "1.1.0"}


def test_a_hold_made_by_an_agent_rollback_is_found_by_the_round(rig: Rig) -> None:
    """Rollbacks that write no commit of their own (the agent's automatic one, --no-push)
    are held by the next round, once."""
    rig.settings(
        {"image_automation": [{"repository": REPO, "policy": {"semver": {"range": "*"}},
                               "interval": "1s"}]},
        env="dev",
    )  # fmt: skip
    rig.sync("dev")
    auto = automation(rig, ["1.1.0", "1.2.0"])
    auto.tick()
    rig.sync("dev")
    rollback(rig.reconciler, RollbackRequest("web", "dev", previous=True, push=False))
    assert rig.store.holds("web", "dev") == []
    rig.later(seconds=5)
    actions = auto.tick()
    assert [a.kind for a in actions].count("hold") == 1, actions
    rig.later(seconds=5)
    assert "hold" not in [a.kind for a in auto.tick()]
    assert len(rig.store.holds("web", "dev")) == 1


def test_the_sync_a_commit_of_automation_queues_names_that_commit(rig: Rig) -> None:
    """Not "whatever head the agent knows when the sync runs": that is the commit before
    (the agent has not polled yet) or a later one, deployed under this commit's message."""
    rig.settings(
        {"image_automation": [{"repository": REPO, "policy": {"semver": {"range": ">=1.0.0"}},
                               "interval": "1s"}]},
        env="dev",
    )  # fmt: skip
    rig.sync("dev")
    before = rig.head()
    (action,) = automation(rig, ["1.0.0", "1.2.0"]).tick()
    committed = rig.head()
    assert committed != before and action.revision == committed
    (request,) = deploy_requests([action, Action("skipped", "web", "prod", "held")])
    assert (request.app, request.env, request.revision) == ("web", "dev", committed)
    assert request.reason == action.message and committed[:12] in action.message
    # No commit known (never for a Committed outcome): the agent looks at Git instead.
    (look,) = deploy_requests([Action("committed", "web", "dev", "x")])
    assert (look.app, look.env, look.revision) == (None, None, None)
