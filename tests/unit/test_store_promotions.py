"""Promotion requests, approvals (once per user), compare-and-set status, and the audit
trail."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from gitswarm.errors import NotFoundError, UsageError
from gitswarm.store import Store

IMAGES = {"medianest/app": "1.4.0", "medianest/worker": "1.4.0"}
GATES = [
    {"gate": "source-healthy", "passed": True, "detail": "staging Synced+Healthy at abc"},
    {"gate": "http", "passed": True, "detail": "https://staging/health 200"},
]


def _request(store: Store, app: str = "medianest", to_env: str = "production") -> int:
    return store.create_promotion(
        app, "staging", to_env, images=IMAGES, requested_by="carol", gates=GATES
    ).id


def test_a_promotion_request_is_created_pending(store: Store) -> None:
    created = store.create_promotion(
        "medianest",
        "staging",
        "production",
        images=IMAGES,
        requested_by="carol",
        gates=GATES,
        message="weekly release",
    )
    assert created.status == "pending"
    assert (created.app, created.from_env, created.to_env) == (
        "medianest",
        "staging",
        "production",
    )
    assert created.images == IMAGES and list(created.gates) == GATES
    assert created.requested_by == "carol" and created.message == "weekly release"
    assert created.commit_sha is None and created.decisions == ()
    assert created.created_at == created.updated_at
    assert store.get_promotion(created.id) == created
    with pytest.raises(NotFoundError, match="promotion 999"):
        store.get_promotion(999)


def test_approvals_are_recorded_once_per_user(store: Store) -> None:
    pid = _request(store)
    store.decide_promotion(pid, "alice", "approve", "looks good")
    after = store.decide_promotion(pid, "bob", "approve")
    assert after.approved_by == ("alice", "bob") and after.rejected_by == ()
    assert after.decisions[0].comment == "looks good"
    assert after.decisions[0].promotion_id == pid
    for decision in ("approve", "reject"):
        with pytest.raises(UsageError, match="alice already decided on promotion"):
            store.decide_promotion(pid, "alice", decision)  # type: ignore[arg-type]
    assert store.get_promotion(pid).approved_by == ("alice", "bob")


def test_decisions_need_a_pending_promotion(store: Store) -> None:
    pid = _request(store)
    store.decide_promotion(pid, "dave", "reject", "not during the freeze")
    assert store.get_promotion(pid).rejected_by == ("dave",)
    assert store.set_promotion_status(pid, "rejected")
    with pytest.raises(UsageError, match="is rejected, not pending"):
        store.decide_promotion(pid, "alice", "approve")
    with pytest.raises(NotFoundError):
        store.decide_promotion(999, "alice", "approve")
    with pytest.raises(ValueError, match="decision"):
        store.decide_promotion(pid, "alice", "maybe")  # type: ignore[arg-type]


def test_a_user_racing_themselves_is_recorded_once(store: Store) -> None:
    pid = _request(store)
    threads = 6
    barrier = threading.Barrier(threads)

    def approve() -> str:
        barrier.wait(30)
        try:
            store.decide_promotion(pid, "alice", "approve")
        except UsageError:
            return "refused"
        return "recorded"

    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = [f.result(timeout=60) for f in [pool.submit(approve) for _ in range(threads)]]
    assert sorted(outcomes) == ["recorded"] + ["refused"] * (threads - 1)
    assert store.get_promotion(pid).approved_by == ("alice",)


def test_pending_promotions_are_listed_oldest_first(store: Store) -> None:
    a = _request(store)
    b = _request(store, app="api")
    c = _request(store, to_env="staging")
    d = _request(store)
    store.set_promotion_status(d, "committed", commit_sha="f00d")
    assert [p.id for p in store.pending_promotions()] == [a, b, c]
    assert [p.id for p in store.pending_promotions(app="medianest")] == [a, c]
    assert [p.id for p in store.pending_promotions(to_env="production")] == [a, b]
    assert store.pending_promotions(app="api", to_env="staging") == []


def test_status_moves_record_commit_gates_and_message(store_url: str) -> None:
    now = [datetime(2025, 6, 1, 12, 0, tzinfo=UTC)]
    # a promotion is dated by the store's shared clock (PostgreSQL's on PostgreSQL)
    with Store(store_url, clock=lambda: now[0], lease_clock=lambda: now[0]) as store:
        pid = _request(store)
        now[0] += timedelta(minutes=5)
        final_gates = [*GATES, {"gate": "window", "passed": True}]
        assert store.set_promotion_status(
            pid, "committed", commit_sha="c0ffee", gates=final_gates, message="promoted"
        )
        got = store.get_promotion(pid)
    assert (got.status, got.commit_sha, got.message) == ("committed", "c0ffee", "promoted")
    assert list(got.gates) == final_gates
    assert got.updated_at - got.created_at == timedelta(minutes=5)


def test_compare_and_set_lets_one_committer_win(store: Store) -> None:
    pid = _request(store)
    assert store.set_promotion_status(pid, "approved", expect="pending")
    threads = 6
    barrier = threading.Barrier(threads)

    def commit(sha: str) -> bool:
        barrier.wait(30)
        return store.set_promotion_status(pid, "committed", expect="approved", commit_sha=sha)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(commit, f"sha{i}") for i in range(threads)]
        won = [f.result(timeout=60) for f in futures]
    assert won.count(True) == 1
    got = store.get_promotion(pid)
    assert got.status == "committed" and got.commit_sha == f"sha{won.index(True)}"
    assert not store.set_promotion_status(pid, "failed", expect=["pending", "approved"])
    assert store.get_promotion(pid).status == "committed"


def test_status_changes_are_checked(store: Store) -> None:
    pid = _request(store)
    with pytest.raises(ValueError, match="promotion status"):
        store.set_promotion_status(pid, "done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="promotion status"):
        store.set_promotion_status(pid, "failed", expect="gone")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="promotion 999"):
        store.set_promotion_status(999, "failed")
    with pytest.raises(NotFoundError, match="promotion 999"):
        store.set_promotion_status(999, "failed", expect="pending")


# --- audit ------------------------------------------------------------------------------


def test_audit_events_record_who_did_what(store_url: str) -> None:
    now = [datetime(2025, 6, 1, 12, 0, tzinfo=UTC)]
    with Store(store_url, clock=lambda: now[0]) as store:
        first = store.audit("alice", "sync", "medianest/production", {"revision": "abc"})
        now[0] += timedelta(minutes=1)
        store.audit("bob", "approve", "promotion/7")
        now[0] += timedelta(minutes=1)
        last = store.audit("alice", "rollback", "medianest/production", {"to": "r1"})
        events = store.audit_events()
        assert [e.action for e in events] == ["rollback", "approve", "sync"]
        assert events[0].id == last and events[-1].id == first
        assert events[-1].details == {"revision": "abc"} and events[1].details == {}
        assert events[-1].at == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        assert [e.action for e in store.audit_events(actor="alice")] == ["rollback", "sync"]
        assert [e.action for e in store.audit_events(target="promotion/7")] == ["approve"]
        assert [e.action for e in store.audit_events(limit=1)] == ["rollback"]
        since = datetime(2025, 6, 1, 12, 1, tzinfo=UTC)
        assert [e.action for e in store.audit_events(since=since)] == ["rollback", "approve"]
        with pytest.raises(ValueError, match="limit"):
            store.audit_events(limit=0)
