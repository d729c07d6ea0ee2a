"""History that lasts, on SQLite and PostgreSQL: a store created by the oldest migration
with a record in every table keeps every one through the upgrade to head; retention
prunes old operations (with their changes and commits) but never what the agent still
needs, and keeps the audit trail unless told; the export streams everything in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from gitswarm.model.operation import DeployedCommit, ServiceChange
from gitswarm.store import Store, resolve_url
from gitswarm.store.db import alembic_config
from gitswarm.store.schema import SCHEMA_HEAD

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# One row for every table of migration 0001, as an old gitswarm wrote them.
OLD_ROWS: dict[str, list[dict[str, object]]] = {
    "operations": [
        {"id": 1, "kind": "sync", "app": "web", "env": "prod", "trigger": "poll",
         "actor": None, "holder": "agent:1", "revision": "a" * 40, "previous_revision": None,
         "author": "Alice", "commit_time": T0 - timedelta(hours=1), "started_at": T0,
         "finished_at": T0 + timedelta(minutes=2), "result": "Succeeded", "reason": None,
         "message": "deployed: web", "dry_run": False},
        {"id": 2, "kind": "sync", "app": "web", "env": "prod", "trigger": "webhook",
         "actor": "bob", "holder": "agent:1", "revision": "b" * 40,
         "previous_revision": "a" * 40, "author": "Bob",
         "commit_time": T0 + timedelta(hours=1), "started_at": T0 + timedelta(hours=2),
         "finished_at": T0 + timedelta(hours=2, minutes=5), "result": "Failed",
         "reason": "HealthTimeout", "message": "web did not converge", "dry_run": False},
        {"id": 3, "kind": "drift", "app": "web", "env": "prod", "trigger": "agent",
         "actor": None, "holder": None, "revision": "a" * 40, "previous_revision": None,
         "author": None, "commit_time": None, "started_at": T0 + timedelta(hours=3),
         "finished_at": T0 + timedelta(hours=3), "result": "Succeeded", "reason": "Drift",
         "message": "manual change", "dry_run": False},
    ],
    "operation_changes": [
        {"operation_id": 1, "service": "web", "action": "changed", "fields": ["image"]},
        {"operation_id": 1, "service": "db", "action": "unchanged", "fields": []},
    ],
    "locks": [{"name": "agent", "holder": "agent:1", "acquired_at": T0,
               "expires_at": T0 + timedelta(days=3650)}],
    "baselines": [{"app": "web", "env": "prod", "service": "web", "spec": {"Name": "w"},
                   "version": 7, "spec_hash": "h", "revision": "a" * 40, "updated_at": T0}],
    "app_status": [{"app": "web", "env": "prod", "sync": "OutOfSync", "health": "Healthy",
                    "last_result": "Failed", "operation_id": 2, "revision": "a" * 40,
                    "reason": "HealthTimeout", "message": "m", "drift": {}, "updated_at": T0}],
    "bad_revisions": [{"app": "web", "env": "prod", "revision": "b" * 40,
                       "reason": "HealthTimeout", "message": "m", "marked_at": T0}],
    "promotions": [{"id": 1, "app": "web", "from_env": "staging", "to_env": "prod",
                    "images": {"web": "1.2"}, "status": "pending", "requested_by": "carol",
                    "created_at": T0, "updated_at": T0, "gates": [], "commit_sha": None,
                    "message": ""}],
    "promotion_decisions": [{"promotion_id": 1, "username": "dave", "decision": "approve",
                             "comment": "ok", "at": T0}],
    "notifications": [{"app": "web", "env": "prod", "kind": "sync_failed",
                       "fingerprint": "f", "sent_at": T0}],
    "audit_events": [
        {"id": 1, "at": T0, "actor": "bob", "action": "sync", "target": "web/prod",
         "details": {"via": "api"}},
        {"id": 2, "at": T0 + timedelta(hours=1), "actor": "carol", "action": "promote",
         "target": "web", "details": {}},
    ],
}  # fmt: skip


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()  # noqa: S608
            for name in OLD_ROWS
        }


def test_a_store_from_the_oldest_migration_keeps_every_record(store_url: str) -> None:
    engine = sa.create_engine(resolve_url(store_url))
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
            old = sa.MetaData()
            old.reflect(conn)
            for name, rows in OLD_ROWS.items():
                # ids as the database hands them out (1, 2, ...), as an old gitswarm got them
                fresh = [{k: v for k, v in row.items() if k != "id"} for row in rows]
                conn.execute(sa.insert(old.tables[name]), fresh)
        before = _counts(engine)
    finally:
        engine.dispose()
    assert before == {name: len(rows) for name, rows in OLD_ROWS.items()}

    with Store(store_url) as store:  # migrates 0001 -> head
        ops = {o.id: o for o in store.history(limit=None)}
        assert set(ops) == {1, 2, 3}
        assert ops[1].revision == "a" * 40 and ops[1].commit_time == T0 - timedelta(hours=1)
        assert ops[1].finished_at == T0 + timedelta(minutes=2)
        assert {c.service: c.action for c in ops[1].changes} == {
            "web": "changed",
            "db": "unchanged",
        }
        assert ops[2].actor == "bob" and ops[2].reason == "HealthTimeout"
        assert ops[3].message == "manual change" and ops[1].commits == ()
        lock = store.lock_holder("agent")
        assert lock is not None and lock.holder == "agent:1"
        assert store.baselines("web", "prod")["web"].version == 7
        status = store.get_status("web", "prod")
        assert status is not None and status.operation_id == 2
        assert store.is_bad("web", "prod", "b" * 40)
        assert store.get_promotion(1).approved_by == ("dave",)
        assert [e.actor for e in store.audit_events()] == ["carol", "bob"]
        # The old history feeds DORA: a failed deployment (lead times need 0004's commits)
        report = store.dora("prod", since=T0 - timedelta(days=1), until=T0 + timedelta(days=1))
        assert (report.deployments, report.failed_deployments, report.lead_times) == (1, 1, ())
        # and new records go on from there
        new = store.start_operation("sync", "web", "prod", holder="h", trigger="cli")
        store.finish_operation(new, "Succeeded", commits=[DeployedCommit("c" * 40, T0)])
        assert new == 4 and store.get_operation(new).commits[0].sha == "c" * 40
    engine = sa.create_engine(resolve_url(store_url))
    try:
        after = _counts(engine)
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM gitswarm_schema_version"))
            assert version.scalar_one() == SCHEMA_HEAD
    finally:
        engine.dispose()
    assert after == {**before, "operations": 4}


def _changed_column(engine: sa.Engine) -> dict[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, changed FROM operations ORDER BY id"))
        return {op_id: changed for op_id, changed in rows}


def test_the_upgrade_to_0007_counts_what_each_old_operation_changed(store_url: str) -> None:
    """Migration 0007 keeps on each operation how many services it changed (what `dora`
    filters on); an old history gets it from its recorded changes, so DORA reads it the
    same after the upgrade."""
    engine = sa.create_engine(resolve_url(store_url))
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004")
            old = sa.MetaData()
            old.reflect(conn)
            # ids as the database hands them out (1, 2, 3)
            fresh = [{k: v for k, v in row.items() if k != "id"} for row in OLD_ROWS["operations"]]
            conn.execute(sa.insert(old.tables["operations"]), fresh)
            conn.execute(
                sa.insert(old.tables["operation_changes"]),
                [
                    *OLD_ROWS["operation_changes"],  # op 1: web changed, db unchanged
                    {"operation_id": 3, "service": "web", "action": "changed",
                     "fields": ["replicas"]},
                    {"operation_id": 3, "service": "db", "action": "removed", "fields": []},
                ],
            )  # fmt: skip
        with Store(store_url) as store:  # migrates 0004 -> head
            report = store.dora("prod", since=T0 - timedelta(days=1), until=T0 + timedelta(days=1))
            new = store.record_operation(
                "drift", "web", "prod", "Succeeded", trigger="agent", reason="Drift",
                changes=[ServiceChange("web", "changed", ("replicas",)),
                         ServiceChange("db", "unchanged")],
            )  # fmt: skip
            later = store.start_operation("sync", "web", "prod", holder="h", trigger="cli")
            store.finish_operation(
                later,
                "Succeeded",
                changes=[ServiceChange("web", "created"), ServiceChange("db", "removed")],
            )
        assert _changed_column(engine) == {1: 1, 2: 0, 3: 2, new: 1, later: 2}
    finally:
        engine.dispose()
    assert (report.deployments, report.failed_deployments) == (1, 1)
    assert [d.operation_id for d in report.drift] == [3]


# --- retention --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _deploy(store: Store, clock: Clock, revision: str, *, env: str = "prod") -> int:
    op = store.start_operation("sync", "web", env, holder="h", trigger="poll", revision=revision)
    store.finish_operation(
        op,
        "Succeeded",
        changes=[ServiceChange("web", "changed", ("image",))],
        commits=[DeployedCommit(revision, clock.now - timedelta(minutes=5), "feat")],
    )
    clock.now += timedelta(days=1)
    return op


def _rows(store_url: str, table: str) -> int:
    engine = sa.create_engine(resolve_url(store_url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
    finally:
        engine.dispose()


def test_retention_prunes_old_operations_and_keeps_what_the_agent_needs(store_url: str) -> None:
    clock = Clock()
    with Store(store_url, clock=clock) as store:
        old = [_deploy(store, clock, f"r{i}") for i in range(6)]  # 1 .. 6 June
        # the app's status points at an old failed sync; a sync still Running is old too
        failed = store.start_operation("sync", "web", "prod", holder="h", trigger="poll")
        store.finish_operation(failed, "Failed", "HealthTimeout")
        running = store.start_operation("sync", "api", "prod", holder="h", trigger="poll")
        store.set_status("web", "prod", sync="OutOfSync", health="Degraded", operation_id=failed)
        store.audit("alice", "sync", "web/prod")
        clock.now += timedelta(days=30)
        recent = _deploy(store, clock, "r9", env="dev")
        assert _rows(store_url, "operation_commits") == 7

        pruned = store.prune_history(operations_before=clock.now - timedelta(days=7), batch=2)

        left = {o.id for o in store.history(limit=None)}
        # r4 and r5 are the last two revisions web/prod deployed; the failed sync is the
        # status's; the running one is not finished; the recent one is recent
        assert left == {old[4], old[5], failed, running, recent}
        assert pruned.operations == 4 and pruned.audit_events == 0
        assert store.last_successful_revision("web", "prod", exclude={"r5"}) == "r4"
        assert [e.actor for e in store.audit_events()] == ["alice"]  # audit kept
    assert _rows(store_url, "operation_commits") == 3  # gone with their operations
    assert _rows(store_url, "operation_changes") == 3


def test_the_audit_trail_is_pruned_only_when_configured(store_url: str) -> None:
    clock = Clock()
    with Store(store_url, clock=clock) as store:
        store.audit("alice", "sync", "web/prod")
        clock.now += timedelta(days=400)
        store.audit("bob", "sync", "web/prod")
        pruned = store.prune_history(audit_before=clock.now - timedelta(days=365))
        assert pruned.audit_events == 1 and pruned.operations == 0
        assert [e.actor for e in store.audit_events()] == ["bob"]


# --- export ------------------------------------------------------------------------------


def test_export_streams_every_operation_oldest_first_with_changes_and_commits(
    store_url: str,
) -> None:
    clock = Clock()
    with Store(store_url, clock=clock) as store:
        ids = [_deploy(store, clock, f"r{i}", env="prod" if i % 2 else "dev") for i in range(5)]
        store.audit("alice", "sync", "web/prod")
        everything = list(store.export_operations(batch=2))
        assert [o.id for o in everything] == ids
        assert everything[0].commits[0].sha == "r0"
        assert everything[0].changes == (ServiceChange("web", "changed", ("image",)),)
        since = T0 + timedelta(days=2)
        assert [o.id for o in store.export_operations(since=since, batch=2)] == ids[2:]
        assert [o.id for o in store.export_operations(env="prod", batch=1)] == [ids[1], ids[3]]
        assert list(store.export_operations(since=T0 + timedelta(days=99))) == []
        assert [e.actor for e in store.export_audit(since=T0)] == ["alice"]
        assert list(store.export_audit(since=clock.now + timedelta(days=1))) == []


def test_export_refuses_a_naive_since(store: Store) -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        list(store.export_operations(since=datetime(2025, 6, 1)))
