"""``gitswarm history`` and ``status`` on a local store read it with sqlite3 alone
(store/quick.py) and get exactly what ``Store`` gets: the same query text, the same row
readers. Any store that only ``Store`` can open (a URL, no file yet, another schema) is
left to it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitswarm.errors import Reason, StoreError
from gitswarm.model.operation import ServiceChange
from gitswarm.store import Store, quick
from gitswarm.store.queries import sqlite_time


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1, microseconds=7)
        return self.now


def _fill(path: Path) -> None:
    with Store(str(path), clock=Clock()) as store:
        for i in range(6):
            op = store.start_operation(
                "sync",
                "web" if i % 2 else "api",
                "prod" if i < 4 else "dev",
                holder="h",
                trigger="poll",
                revision=f"{i:040x}",
                author="Ann",
                commit_time=datetime(2025, 5, 31, 9, 30, tzinfo=UTC),
                dry_run=i == 3,
            )
            if i != 5:  # the last one is still Running: no finished_at
                store.finish_operation(
                    op,
                    "Failed" if i == 2 else "Succeeded",
                    message=f"op {i}",
                    changes=[ServiceChange("web", "changed", ("image", "env.A"))],
                )
        store.record_operation("drift", "web", "prod", "Succeeded", trigger="agent")


@pytest.mark.parametrize(
    ("app", "env", "limit"),
    [(None, None, 50), (None, "prod", 20), ("web", "prod", 2), ("api", None, 1), ("x", "y", 5)],
)
def test_the_quick_read_is_the_store_s_own_history(
    tmp_path: Path, app: str | None, env: str | None, limit: int
) -> None:
    path = tmp_path / "state.db"
    _fill(path)
    with Store(str(path)) as store:
        expected = store.history(app=app, env=env, limit=limit)
    assert quick.history(str(path), app=app, env=env, limit=limit) == expected
    if app is None:
        assert expected and any(o.changes for o in expected)


def test_times_are_kept_in_sqlite_as_the_quick_read_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _fill(path)
    with Store(str(path)) as store:
        ops = store.history(limit=None)
    raw = dict(sqlite3.connect(path).execute("SELECT id, started_at FROM operations").fetchall())
    for op in ops:
        assert raw[op.id] == sqlite_time(op.started_at)


def test_a_store_only_store_can_open_is_left_to_it(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "state.db"
    assert quick.history(str(missing), env="prod") is None
    assert not missing.parent.exists()  # reading never creates a store
    # (PostgreSQL through psycopg2 is read too: test_history_read_paths; another driver
    # is the Store's)
    assert quick.history("postgresql+psycopg2://u@localhost/gitswarm", env="prod") is None
    path = tmp_path / "state.db"
    _fill(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE gitswarm_schema_version SET version_num = '0003'")
    assert quick.history(str(path), env="prod") is None  # Store migrates it first


def test_bad_arguments_and_a_broken_file_are_the_store_s_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit must be positive, not 0"):
        quick.history(str(tmp_path / "state.db"), limit=0)
    broken = tmp_path / "broken.db"
    broken.write_text("not a database\n" * 100)
    with pytest.raises(StoreError) as info:
        quick.history(str(broken), env="prod")
    assert info.value.message == (
        f"state store sqlite:///{broken}: read history: file is not a database (DatabaseError)"
    )


def _fill_statuses(path: Path) -> None:
    with Store(str(path), clock=Clock()) as store:
        store.set_status("web", "prod", sync="Synced", health="Healthy", revision="a" * 40)
        store.set_status(
            "api", "dev", sync="OutOfSync", drift={"api": [{"field": "image"}]}, message="m"
        )
        store.set_status("web", "prod", last_result="Failed", reason=Reason.DEPLOY_REJECTED)
        for service, version in (("web", 3), ("db", 1)):
            store.save_baseline(
                "web",
                "prod",
                service,
                spec={"TaskTemplate": {"ContainerSpec": {"Image": f"{service}:1"}}},
                version=version,
                spec_hash=f"h-{service}",
                revision="a" * 40,
                rendered={"image": f"{service}:1"},
            )
        hold, _ = store.create_hold(
            "web", "prod", reason="rolled back", created_by="ann", images={"web": "1"}
        )
        store.create_hold("web", "prod", reason="again", created_by="bob", operation_id=None)
        store.release_hold(hold.id, by="ann", reason="fixed")


def test_the_quick_reads_of_status_are_the_store_s_own(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _fill_statuses(path)
    reads = quick.reads(str(path))
    assert reads is not None
    with Store(str(path)) as store:
        assert reads.all_statuses() == store.all_statuses()
        assert len(store.all_statuses()) == 2
        for app, env in (("web", "prod"), ("api", "dev"), ("web", "dev")):
            assert reads.get_status(app, env) == store.get_status(app, env)
            assert reads.baselines(app, env) == store.baselines(app, env)
            for active in (True, False, None):
                assert reads.holds(app, env, active=active) == store.holds(app, env, active=active)
        assert reads.holds(active=None) == store.holds(active=None)
        assert len(store.holds(active=None)) == 2 and len(store.holds()) == 1
        assert list(reads.baselines("web", "prod")) == ["db", "web"]
        status = reads.get_status("web", "prod")
        assert status is not None and status.updated_at.tzinfo is not None


def test_status_s_store_is_left_to_store_when_only_it_can_open_it(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "state.db"
    assert quick.reads(str(missing)) is None
    assert not missing.parent.exists()
    assert quick.reads("postgresql://u@localhost/gitswarm") is None
    path = tmp_path / "state.db"
    _fill_statuses(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE gitswarm_schema_version SET version_num = '0003'")
    assert quick.reads(str(path)) is None
    broken = tmp_path / "broken.db"
    broken.write_text("not a database\n" * 100)
    with pytest.raises(StoreError) as info:
        quick.reads(str(broken))
    assert info.value.message == (
        f"state store sqlite:///{broken}: open: file is not a database (DatabaseError)"
    )
