"""Operations: start/finish, one-shot records, history queries, the rollback target, and
Running operations of dead processes marked Interrupted."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gitswarm.errors import NotFoundError, Reason
from gitswarm.model.operation import OperationResult, ServiceChange
from gitswarm.store import Store, sync_lock


class ManualClock:
    """The store's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _sync(store: Store, revision: str, result: OperationResult = "Succeeded") -> int:
    op = store.start_operation("sync", "web", "prod", holder="h", trigger="poll", revision=revision)
    store.finish_operation(op, result)
    return op


def test_an_operation_records_everything_from_start_to_finish(store_url: str) -> None:
    clock = ManualClock()
    commit_time = datetime(2025, 6, 1, 11, 58, 30, 123456, tzinfo=UTC)
    with Store(store_url, clock=clock) as store:
        op = store.start_operation(
            "sync",
            "medianest",
            "production",
            holder="agent-1",
            trigger="webhook",
            actor="alice",
            revision="b" * 40,
            previous_revision="a" * 40,
            author="Alice <alice@example.com>",
            commit_time=commit_time,
        )
        running = store.get_operation(op)
        assert running.result == "Running" and running.running
        assert running.finished_at is None and running.duration is None
        clock.advance(42.5)
        changes = [
            ServiceChange("web", "changed", ("image", "deploy.replicas")),
            ServiceChange("db", "unchanged"),
            ServiceChange("cache", "created"),
            ServiceChange("old", "removed"),
        ]
        store.finish_operation(op, "Failed", "HealthTimeout", "web did not converge", changes)
        done = store.get_operation(op)
    assert done.id == op
    assert (done.kind, done.app, done.env) == ("sync", "medianest", "production")
    assert (done.trigger, done.actor, done.holder) == ("webhook", "alice", "agent-1")
    assert (done.revision, done.previous_revision) == ("b" * 40, "a" * 40)
    assert done.author == "Alice <alice@example.com>"
    assert done.commit_time == commit_time
    assert done.started_at == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert done.duration == 42.5
    assert (done.result, done.reason, done.message) == (
        "Failed",
        "HealthTimeout",
        "web did not converge",
    )
    assert not done.dry_run
    assert {c.service: c for c in done.changes} == {c.service: c for c in changes}
    assert done.changes[-1] == ServiceChange("web", "changed", ("image", "deploy.replicas"))


def test_times_come_back_as_aware_utc_whatever_zone_they_went_in(store: Store) -> None:
    cest = datetime(2025, 6, 1, 14, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    op = store.start_operation("sync", "web", "dev", holder="h", trigger="cli", commit_time=cest)
    got = store.get_operation(op).commit_time
    assert got == cest and got is not None and got.tzinfo == UTC


def test_record_operation_writes_a_finished_one_in_one_call(store: Store) -> None:
    op = store.record_operation(
        "drift",
        "web",
        "dev",
        "Succeeded",
        trigger="agent",
        revision="abc",
        message="web: deploy.replicas 2 -> 5",
        changes=[ServiceChange("web", "changed", ("deploy.replicas",))],
    )
    got = store.get_operation(op)
    assert got.kind == "drift" and got.result == "Succeeded"
    assert got.finished_at == got.started_at
    assert got.changes == (ServiceChange("web", "changed", ("deploy.replicas",)),)


def test_history_is_newest_first_and_filters(store_url: str) -> None:
    clock = ManualClock()
    with Store(store_url, clock=clock) as store:
        ids = []
        for app, env, kind in [
            ("web", "dev", "sync"),
            ("web", "prod", "sync"),
            ("api", "dev", "drift"),
            ("web", "dev", "rollback"),
            ("web", "dev", "promotion"),
        ]:
            clock.advance(60)
            ids.append(store.record_operation(kind, app, env, "Succeeded", trigger="poll"))
        assert [o.id for o in store.history()] == ids[::-1]
        assert [o.id for o in store.history(limit=2)] == ids[:2:-1]
        assert [o.id for o in store.history(app="web", env="dev")] == [ids[4], ids[3], ids[0]]
        assert [o.id for o in store.history(env="dev", kinds=["sync", "drift"])] == [
            ids[2],
            ids[0],
        ]
        since = datetime(2025, 6, 1, 12, 3, tzinfo=UTC)
        assert [o.id for o in store.history(since=since)] == [ids[4], ids[3], ids[2]]
        assert store.history(app="nope") == []
        assert len(store.history(limit=None)) == 5


def test_history_carries_each_operations_changes(store: Store) -> None:
    a = store.record_operation(
        "sync", "web", "dev", "Succeeded", trigger="cli", changes=[ServiceChange("a", "created")]
    )
    b = store.record_operation("sync", "web", "dev", "Succeeded", trigger="cli")
    c = store.record_operation(
        "sync", "web", "dev", "Succeeded", trigger="cli", changes=[ServiceChange("c", "removed")]
    )
    by_id = {o.id: o.changes for o in store.history()}
    assert by_id == {
        a: (ServiceChange("a", "created"),),
        b: (),
        c: (ServiceChange("c", "removed"),),
    }


def test_last_operation_by_kind_skips_dry_runs_unless_asked(store: Store) -> None:
    assert store.last_operation("web", "dev") is None
    first = _sync(store, "r1")
    drift = store.record_operation("drift", "web", "prod", "Succeeded", trigger="agent")
    dry = store.start_operation("sync", "web", "prod", holder="h", trigger="cli", dry_run=True)
    store.finish_operation(dry, "Succeeded")
    assert store.last_operation("web", "prod") == store.get_operation(drift)
    assert store.last_operation("web", "prod", kinds=["sync"]) == store.get_operation(first)
    last = store.last_operation("web", "prod", kinds=["sync"], include_dry_runs=True)
    assert last is not None and last.id == dry and last.dry_run


def test_last_successful_revision_is_the_rollback_target(store: Store) -> None:
    assert store.last_successful_revision("web", "prod") is None
    _sync(store, "r1")
    _sync(store, "r2")
    _sync(store, "r3", "Failed")
    rollback = store.start_operation(
        "rollback", "web", "prod", holder="h", trigger="cli", revision="r2-revert"
    )
    store.finish_operation(rollback, "Succeeded")
    dry = store.start_operation(
        "sync", "web", "prod", holder="h", trigger="cli", revision="r9", dry_run=True
    )
    store.finish_operation(dry, "Succeeded")
    store.record_operation("drift", "web", "prod", "Succeeded", trigger="agent", revision="r8")
    _sync(store, "r4", "RolledBack")
    assert store.last_successful_revision("web", "prod") == "r2-revert"
    assert store.last_successful_revision("web", "prod", exclude=["r2-revert"]) == "r2"
    assert store.last_successful_revision("web", "prod", exclude={"r2-revert", "r2"}) == "r1"
    assert store.last_successful_revision("web", "dev") is None


def test_finishing_twice_or_unknown_or_running_is_refused(store: Store) -> None:
    op = _sync(store, "r1")
    with pytest.raises(ValueError, match="already finished"):
        store.finish_operation(op, "Failed")
    with pytest.raises(NotFoundError, match="operation 999 does not exist"):
        store.finish_operation(999, "Failed")
    with pytest.raises(NotFoundError):
        store.get_operation(999)
    other = store.start_operation("sync", "web", "dev", holder="h", trigger="cli")
    with pytest.raises(ValueError, match="final result"):
        store.finish_operation(other, "Running")
    assert store.get_operation(other).result == "Running"


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s: s.start_operation("deploy", "a", "e", holder="h", trigger="cli"), "kind"),
        (lambda s: s.start_operation("sync", "a", "e", holder="h", trigger="cron"), "trigger"),
        (lambda s: s.record_operation("sync", "a", "e", "Done", trigger="cli"), "result"),
        (lambda s: s.history(kinds=["sink"]), "kind"),
        (lambda s: s.history(limit=0), "limit"),
        (
            lambda s: s.record_operation(
                "sync", "a", "e", "Failed", trigger="cli", changes=[ServiceChange("w", "moved")]
            ),
            "change action",
        ),
        (
            lambda s: s.record_operation(
                "sync",
                "a",
                "e",
                "Failed",
                trigger="cli",
                changes=[ServiceChange("w", "created"), ServiceChange("w", "removed")],
            ),
            "twice",
        ),
    ],
)
def test_values_outside_the_model_are_refused(
    store: Store, call: Callable[[Store], object], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        call(store)
    assert store.history() == []


# --- interrupted operations -------------------------------------------------------------


def test_running_operations_without_a_live_lease_are_marked_interrupted(store_url: str) -> None:
    clock = ManualClock()
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        assert store.acquire_lock(sync_lock("web", "dev"), "dead", 30)
        dead_op = store.start_operation("sync", "web", "dev", holder="dead", trigger="poll")
        assert store.acquire_lock(sync_lock("web", "prod"), "alive", 300)
        alive_op = store.start_operation("sync", "web", "prod", holder="alive", trigger="poll")
        finished = _sync(store, "r1")

        assert store.mark_interrupted() == []  # both leases are live
        clock.advance(31)  # "dead" stopped renewing: its lease ran out
        assert store.mark_interrupted(exclude_holder="dead") == []
        assert store.mark_interrupted(app="api") == []
        assert store.mark_interrupted() == [dead_op]
        assert store.mark_interrupted() == []  # once only

        got = store.get_operation(dead_op)
        assert got.result == "Interrupted" and got.reason == Reason.INTERRUPTED
        assert got.finished_at == clock.now and "went away" in got.message
        assert store.get_operation(alive_op).result == "Running"
        assert store.get_operation(finished).result == "Succeeded"

        # a slow (not dead) process may still say how it really ended
        store.finish_operation(dead_op, "Succeeded")
        assert store.get_operation(dead_op).result == "Succeeded"


def test_taking_over_the_lock_then_marking_finds_the_dead_holders_operation(
    store_url: str,
) -> None:
    clock = ManualClock()
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        name = sync_lock("web", "dev")
        assert store.acquire_lock(name, "old", 30)
        op = store.start_operation("sync", "web", "dev", holder="old", trigger="poll")
        clock.advance(30)
        assert store.acquire_lock(name, "new", 30)
        assert store.mark_interrupted(app="web", env="dev", exclude_holder="new") == [op]


def _die_mid_sync(url: str, ready: multiprocessing.synchronize.Event) -> None:
    with Store(url) as store:
        store.acquire_lock(sync_lock("web", "dev"), f"pid-{os.getpid()}", 0.5)
        store.start_operation("sync", "web", "dev", holder=f"pid-{os.getpid()}", trigger="poll")
    ready.set()
    time.sleep(60)


def test_an_agent_killed_mid_sync_leaves_an_operation_marked_interrupted(
    store_url: str,
) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_die_mid_sync, args=(store_url, ready))
    proc.start()
    try:
        assert ready.wait(30)
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    with Store(store_url) as store:
        (op,) = store.history()
        assert op.result == "Running"
        deadline = time.monotonic() + 10
        marked: list[int] = []
        while not marked and time.monotonic() < deadline:
            marked = store.mark_interrupted()
            time.sleep(0.05)
        assert marked == [op.id]
        assert store.get_operation(op.id).result == "Interrupted"


def test_sqlite_times_read_back_aware_whatever_text_holds_them(tmp_path: os.PathLike[str]) -> None:
    """SQLite keeps times as naive UTC text; the store's fast reading of its own format
    and the generic path for any other (a row written by another tool) agree."""
    import sqlite3

    location = os.path.join(tmp_path, "state.db")
    with Store(location) as store:
        first = store.record_operation("drift", "web", "prod", "Succeeded", trigger="agent")
    with sqlite3.connect(location) as db:
        db.execute(
            "UPDATE operations SET finished_at = '2025-06-01 12:00:05' WHERE id = ?", (first,)
        )
        db.execute(
            "UPDATE operations SET started_at = '2025-06-01 12:00:00.250000' WHERE id = ?",
            (first,),
        )
    with Store(location) as store:
        got = store.get_operation(first)
    assert got.started_at == datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert got.finished_at == datetime(2025, 6, 1, 12, 0, 5, tzinfo=UTC)


def test_the_writes_of_an_atomic_block_land_together_or_not_at_all(store_url: str) -> None:
    """``Store.atomic``: the Recorder writes an operation's end and the status after it
    in one (record.py); another connection sees neither until both are committed, and
    an error inside leaves neither."""
    with Store(store_url) as store, Store(store_url) as other:
        op = store.start_operation("sync", "web", "prod", holder="h", trigger="poll")
        with pytest.raises(RuntimeError), store.atomic("end and status"):
            store.finish_operation(op, "Failed", Reason.HEALTH_TIMEOUT)
            store.set_status("web", "prod", health="Degraded", last_result="Failed")
            assert other.get_operation(op).result == "Running"  # not committed yet
            assert other.get_status("web", "prod") is None
            raise RuntimeError("the process dies between the two")
        assert store.get_operation(op).result == "Running"
        assert store.get_status("web", "prod") is None
        with store.atomic("end and status"), store.atomic("nested: the outer one counts"):
            store.finish_operation(op, "Failed", Reason.HEALTH_TIMEOUT)
            store.set_status("web", "prod", health="Degraded", last_result="Failed")
        status = other.get_status("web", "prod")
        assert status is not None and (status.health, status.last_result) == ("Degraded", "Failed")
        assert other.get_operation(op).result == "Failed"
