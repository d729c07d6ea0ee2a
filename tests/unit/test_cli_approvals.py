"""`gitswarm approve/reject` decide as the store's user $GITSWARM_ACTOR, authorized by the
same access.authorize as the API: the approver role in the target environment, never
the requester; a refusal exits 2 with the reason, audited, and decides nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli.main import cli
from gitswarm.model.account import RoleBinding
from tests.unit.promotion_rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = make_rig(tmp_path)
    try:
        rig.settings({"approvals": 2})
        rig.sync("dev")
        rig.sync("prod")
        for name, bindings in {
            "carol": [RoleBinding("deployer"), RoleBinding("approver", ("prod",))],
            "alice": [RoleBinding("approver", ("prod",))],
            "dave": [RoleBinding("viewer"), RoleBinding("approver", ("dev",))],
        }.items():
            rig.store.add_user(name, "$argon2id$v=19$not-used-here", bindings)
        yield rig
    finally:
        rig.store.close()


def decide(rig: Rig, actor: str, *args: str) -> tuple[int, str]:
    state = str(rig.path.parent / "state.db")
    result = CliRunner().invoke(
        cli,
        [*args, "--repo", str(rig.path), "--state", state],
        env={"GITSWARM_ACTOR": actor, "GITSWARM_CONFIG": ""},
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.output


def pending(rig: Rig) -> int:
    outcome = rig.promote(actor="carol")
    assert outcome.result == "Pending" and outcome.promotion_id is not None
    return outcome.promotion_id


def test_only_an_approver_of_the_target_who_did_not_request_it_may_approve(rig: Rig) -> None:
    pid = pending(rig)
    refusals = {
        "mallory": (
            "mallory is not a user of the state store, so holds no role here: acting as a "
            "user needs one (`gitswarm user add NAME --role approver --env ENV`; the CLI acts "
            "as $GITSWARM_ACTOR, default: the login name)"
        ),
        "dave": "dave may not act as approver in environment 'prod'",
        "carol": "carol requested this promotion and cannot approve it",
    }
    for actor, message in refusals.items():
        code, out = decide(rig, actor, "approve", str(pid), "--json")
        assert code == 2, out
        error = json.loads(out)["error"]
        assert (error["reason"], error["message"]) == ("Forbidden", message)
        assert "Traceback" not in out
    assert rig.store.get_promotion(pid).approved_by == ()
    events = rig.store.audit_events(target="web/prod")
    refused = sorted((e.actor, e.action) for e in events if e.details.get("result") == "forbidden")
    assert refused == [("carol", "approve"), ("dave", "approve"), ("mallory", "approve")]
    code, out = decide(rig, "alice", "approve", str(pid))
    assert code == 0, out
    assert "Approved" in out and rig.store.get_promotion(pid).approved_by == ("alice",)


def test_reject_needs_the_approver_role_too(rig: Rig) -> None:
    pid = pending(rig)
    code, out = decide(rig, "dave", "reject", str(pid), "--reason", "not now")
    assert code == 2 and "dave may not act as approver in environment 'prod'" in out
    assert rig.store.get_promotion(pid).status == "pending"
    code, out = decide(rig, "alice", "reject", str(pid), "--reason", "not now")
    assert code == 0, out
    assert rig.store.get_promotion(pid).status == "rejected"
