"""Approvals: N distinct approvers, never the requester; a replayed or concurrent
approval counts once; reject and expiry end it; gates run again before the commit."""

from __future__ import annotations

import datetime as dt
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitswarm.errors import UsageError
from gitswarm.model.events import Event
from gitswarm.promote.core.message import parse_trailers
from gitswarm.promote.gates import GateCommand
from gitswarm.promote.pipeline import PromoteRequest
from tests.unit.promotion_rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = make_rig(tmp_path)
    try:
        yield rig
    finally:
        rig.store.close()


def ready(rig: Rig, **promotion: object) -> None:
    rig.settings(promotion)
    rig.sync("dev")
    rig.sync("prod")


def test_without_approvals_a_promotion_commits_the_dev_tag_with_trailers(rig: Rig) -> None:
    ready(rig)
    before = rig.head()
    outcome = rig.promote()
    assert outcome.result == "Committed", outcome.message
    assert rig.tag_in("prod") == "1.1.0" and rig.head() == outcome.commit != before
    trailers = parse_trailers(rig.git("log", "-1", "--format=%B"))
    assert trailers["Promoted-Images"] == ["reg.local:5000/shop/web:1.1.0"]
    assert trailers["Promoted-From"][0].startswith("dev@")
    assert rig.git("show", "--format=", "--name-only", "HEAD") == "environments/prod/.env"
    (op,) = rig.store.history("web", "prod", kinds=("promotion",))
    assert (op.result, op.revision, op.actor) == ("Succeeded", outcome.commit, "carol")


def test_two_distinct_approvers_commit_and_the_requester_cannot_approve(rig: Rig) -> None:
    ready(rig, approvals=2)
    head = rig.head()
    pending = rig.promote()
    assert pending.result == "Pending" and pending.promotion_id is not None
    pid = pending.promotion_id
    promoter = rig.promoter()
    with pytest.raises(UsageError, match=r"carol requested promotion .* and cannot approve it"):
        promoter.approve(pid, "carol")
    first = promoter.approve(pid, "alice")
    assert first.result == "Approved" and rig.head() == head
    with pytest.raises(UsageError, match="alice already decided on promotion"):
        promoter.approve(pid, "alice")  # a replayed approval counts once
    assert rig.head() == head
    second = promoter.approve(pid, "bob")
    assert second.result == "Committed", second.message
    trailers = parse_trailers(rig.git("log", "-1", "--format=%B"))
    assert trailers["Approved-By"] == ["alice", "bob"] and trailers["Requested-By"] == ["carol"]
    assert rig.store.get_promotion(pid).status == "committed"
    audit = [(e.actor, e.action) for e in rig.store.export_audit()]
    assert ("alice", "promotion-approve") in audit and ("bob", "promotion-approve") in audit


def test_approvals_arriving_at_once_commit_once(rig: Rig) -> None:
    ready(rig, approvals=2)
    pid = rig.promote().promotion_id
    assert pid is not None
    rig.promoter().approve(pid, "alice")
    head = rig.head()
    results: list[str] = []
    errors: list[str] = []
    start = threading.Barrier(3)

    def approve(user: str) -> None:
        start.wait()
        try:
            results.append(rig.promoter().approve(pid, user).result)
        except UsageError as exc:
            errors.append(exc.message)

    threads = [threading.Thread(target=approve, args=(u,)) for u in ("bob", "dave", "erin")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("Committed") == 1, (results, errors)
    assert len(rig.git("rev-list", f"{head}..HEAD").split()) == 1


def test_reject_ends_it_and_nothing_is_committed(rig: Rig) -> None:
    ready(rig, approvals=1)
    head = rig.head()
    pid = rig.promote().promotion_id
    assert pid is not None
    with pytest.raises(UsageError, match="needs a reason"):
        rig.promoter().reject(pid, "alice", " ")
    outcome = rig.promoter().reject(pid, "alice", "not during the sale")
    assert outcome.result == "Rejected" and outcome.reason == "PromotionRejected"
    with pytest.raises(UsageError, match="is rejected, not pending"):
        rig.promoter().approve(pid, "bob")
    assert rig.head() == head and rig.store.get_promotion(pid).status == "rejected"


def test_a_pending_promotion_expires(rig: Rig) -> None:
    ready(rig, approvals=1, expires="1h")
    head = rig.head()
    pid = rig.promote().promotion_id
    assert pid is not None
    rig.now.at += dt.timedelta(hours=2)
    with pytest.raises(UsageError, match="is expired, not pending"):
        rig.promoter().approve(pid, "alice")
    assert rig.head() == head
    (op,) = [o for o in rig.store.history("web", "prod") if o.reason == "PromotionExpired"]
    assert "expired after 1h" in op.message


def test_a_pending_promotion_dated_in_the_future_is_expired_not_approvable(rig: Rig) -> None:
    # created at T; the clock then steps back 2 h: with "created + expires > now" alone
    # it would wait 3 h instead of 1 h for its approvals
    ready(rig, approvals=1, expires="1h")
    head = rig.head()
    pid = rig.promote().promotion_id
    assert pid is not None
    rig.now.at -= dt.timedelta(seconds=4)  # within the allowed skew: still pending
    assert rig.promoter().expire() == []
    rig.now.at -= dt.timedelta(hours=2)
    with pytest.raises(UsageError, match="is expired, not pending"):
        rig.promoter().approve(pid, "alice")
    assert rig.head() == head and rig.store.get_promotion(pid).status == "expired"
    (op,) = [o for o in rig.store.history("web", "prod") if o.reason == "PromotionExpired"]
    assert f"promotion {pid} expired: it is dated " in op.message
    assert "a clock stepped back" in op.message


def test_gates_run_again_before_the_commit(rig: Rig, tmp_path: Path) -> None:
    flag = tmp_path / "fail-now"
    rig.commands["check"] = GateCommand(
        "check",
        (
            sys.executable,
            "-c",
            f"import os, sys; sys.exit(1 if os.path.exists({str(flag)!r}) else 0)",
        ),
    )
    ready(rig, approvals=1, gates={"command": ["check"]})
    head = rig.head()
    pid = rig.promote().promotion_id
    assert pid is not None
    flag.write_text("x")
    outcome = rig.promoter().approve(pid, "alice")
    assert outcome.result == "Failed" and outcome.reason == "GateFailed"
    assert "a gate failed when checked again" in outcome.message
    assert rig.head() == head and rig.store.get_promotion(pid).status == "failed"


def test_a_command_gate_the_operator_did_not_define_runs_nothing(rig: Rig) -> None:
    ready(rig, gates={"command": ["pwn"]})
    head = rig.head()
    outcome = rig.promote()
    assert (outcome.result, outcome.reason, outcome.exit_code) == ("Failed", "GateNotAllowed", 2)
    (gate,) = [g for g in outcome.gates if g.name == "command-pwn"]
    assert not gate.passed and gate.refused
    assert "no command 'pwn' is defined in the operator's config" in gate.summary
    assert rig.head() == head


def test_the_source_must_be_deployed_and_healthy(rig: Rig) -> None:
    rig.settings({})
    rig.sync("prod")
    outcome = rig.promote()
    assert outcome.result == "Failed" and "gitswarm has never deployed it" in outcome.message
    rig.sync("dev")
    rig.set_tag("dev", "1.2.0")  # Git moved on, dev still runs 1.1.0
    outcome = rig.promote()
    assert outcome.result == "Failed" and "dev is not deployed and healthy" in outcome.message
    assert "OutOfSync" in outcome.message


class Sent:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)


def test_pending_committed_and_rejected_are_notified_once_each(rig: Rig) -> None:
    sent = Sent()
    rig.reconciler.notifier = sent  # type: ignore[assignment]
    ready(rig, approvals=1)
    first = rig.promote().promotion_id
    assert first is not None
    rig.promoter().reject(first, "alice", "not now")
    second = rig.promote().promotion_id
    assert second is not None
    rig.promoter().approve(second, "alice")
    kinds = [
        (e.kind, e.details.get("promotion")) for e in sent.events if e.kind.startswith("promotion")
    ]
    assert kinds == [
        ("promotion_pending", first),
        ("promotion_rejected", first),
        ("promotion_pending", second),
        ("promotion_committed", second),
    ]


def test_a_dry_run_shows_the_edit_and_commits_nothing(rig: Rig) -> None:
    ready(rig)
    head = rig.head()
    outcome = rig.promote(dry_run=True)
    assert outcome.result == "DryRun" and outcome.exit_code == 0
    ((path, diff),) = outcome.edits
    assert path == "environments/prod/.env"
    assert "-TAG=1.0.0\n+TAG=1.1.0\n" in diff
    assert rig.head() == head and rig.store.promotions() == []


def test_progress_names_each_stage_and_gate_as_it_runs(rig: Rig) -> None:
    ready(rig, gates={"source_healthy_for": "0s"})
    said: list[str] = []
    rig.promoter(progress=said.append).promote(PromoteRequest("web", "dev", "prod", actor="carol"))
    assert said[0] == "check web in dev: deployed and healthy"
    assert "gate source-healthy" in said
    assert any(s.startswith("gate source-healthy: pass") for s in said)
    assert any(s.startswith("gate policy: pass") for s in said)
    assert any(s.startswith("gate window: pass") for s in said)


def test_hold_release_on_the_command_line_is_audited(rig: Rig, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gitswarm.cli.main import cli

    hold, _ = rig.store.create_hold("web", "dev", reason="rolled back", created_by="x",
                                    images={"reg/web": "1.2.0"}, operation_id=99)  # fmt: skip
    state = str(tmp_path / "state.db")
    runner = CliRunner()
    listed = runner.invoke(cli, ["hold", "list", "--state", state])
    assert f"{hold.id}  web/dev  active  reg/web:1.2.0" in listed.output
    refused = runner.invoke(cli, ["hold", "release", str(hold.id), "--state", state])
    assert refused.exit_code == 2 and "needs --reason" in refused.output
    done = runner.invoke(
        cli, ["hold", "release", str(hold.id), "--reason", "fixed", "--state", state],
        env={"GITSWARM_ACTOR": "alice"},
    )  # fmt: skip
    assert done.exit_code == 0 and "released" in done.output
    assert rig.store.holds("web", "dev") == []
    assert ("alice", "hold-released") in [(e.actor, e.action) for e in rig.store.export_audit()]
