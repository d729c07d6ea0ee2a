"""Opening the state store: where it lives, migrations from empty and on re-open,
concurrent first opens, SQLite's settings, and errors leaving as StoreError."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gitswarm.errors import ConfigError, StoreError
from gitswarm.store import Store, default_location, resolve_url
from gitswarm.store.db import alembic_config
from gitswarm.store.schema import VERSION_TABLE, metadata

TABLES = {
    "operations",
    "operation_changes",
    "locks",
    "baselines",
    "app_status",
    "bad_revisions",
    "promotions",
    "promotion_decisions",
    "promotion_holds",
    "notifications",
    "audit_events",
    "webhook_deliveries",
    "operation_commits",
    "users",
    "sessions",
    "api_tokens",
    "agent_source",
    VERSION_TABLE,
}


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(resolve_url(url))


# --- where it lives ---------------------------------------------------------------------


def test_default_location_is_under_local_share() -> None:
    assert default_location({"HOME": "/home/ops"}) == "/home/ops/.local/share/gitswarm/state.db"


def test_default_location_respects_xdg_data_home() -> None:
    env = {"HOME": "/home/ops", "XDG_DATA_HOME": "/data"}
    assert default_location(env) == "/data/gitswarm/state.db"


def test_a_relative_xdg_data_home_is_ignored_as_the_spec_says() -> None:
    env = {"HOME": "/home/ops", "XDG_DATA_HOME": "relative/dir"}
    assert default_location(env) == "/home/ops/.local/share/gitswarm/state.db"


def test_gitswarm_state_wins_as_a_path_or_a_url() -> None:
    env = {"HOME": "/h", "XDG_DATA_HOME": "/data", "GITSWARM_STATE": "/srv/state.db"}
    assert default_location(env) == "/srv/state.db"
    env["GITSWARM_STATE"] = "postgresql://gs@db/gitswarm"
    assert default_location(env) == "postgresql://gs@db/gitswarm"


def test_the_location_can_come_from_a_file_such_as_a_docker_secret(tmp_path: Path) -> None:
    secret = tmp_path / "gitswarm-state-url"
    secret.write_text("postgresql://gs:s3cret@db/gitswarm\n")
    env = {"HOME": "/h", "GITSWARM_STATE_FILE": str(secret)}
    assert default_location(env) == "postgresql://gs:s3cret@db/gitswarm"
    env["GITSWARM_STATE"] = "/srv/state.db"  # the variable itself wins
    assert default_location(env) == "/srv/state.db"
    env["GITSWARM_STATE"] = ""  # an image's default emptied by the stack file
    assert default_location(env) == "postgresql://gs:s3cret@db/gitswarm"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            None,
            "$GITSWARM_STATE_FILE: cannot read {path}: No such file or directory; it must "
            "name a file holding the store's location (a PostgreSQL URL, e.g. a Docker secret)",
        ),
        (
            "",
            "$GITSWARM_STATE_FILE: {path} must hold the store's location on one line "
            "(a PostgreSQL URL or a SQLite path)",
        ),
        (
            "postgresql://a:pw@db/x\nmore",
            "$GITSWARM_STATE_FILE: {path} must hold the store's "
            "location on one line (a PostgreSQL URL or a SQLite path)",
        ),
        (
            "x" * 5000,
            "$GITSWARM_STATE_FILE: {path} is larger than 4096 bytes; it must hold "
            "only the store's location (a PostgreSQL URL or a SQLite path)",
        ),
    ],
    ids=["missing", "empty", "two-lines", "too-large"],
)
def test_a_bad_state_file_is_a_config_error_that_never_quotes_it(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "state-url"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        default_location({"HOME": "/h", "GITSWARM_STATE_FILE": str(path)})
    assert caught.value.message == message.format(path=path)
    assert "pw@" not in str(caught.value)


def test_store_opens_the_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITSWARM_STATE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with Store() as store:
        assert store.location == f"sqlite:///{tmp_path}/xdg/gitswarm/state.db"
    created = tmp_path / "xdg" / "gitswarm"
    assert (created / "state.db").is_file()
    assert created.stat().st_mode & 0o777 == 0o700


def test_urls_pick_psycopg_and_paths_become_sqlite(tmp_path: Path) -> None:
    for given in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
        assert resolve_url(given).drivername == "postgresql+psycopg"
    url = resolve_url(str(tmp_path / "x" / ".." / "s.db"))
    assert url.drivername == "sqlite"
    assert url.database == str(tmp_path / "s.db")


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("postgresql://u:pw@h:notaport/db", "not a valid URL"),
    ],
)
def test_unusable_locations_are_refused(location: str, words: str) -> None:
    with pytest.raises(StoreError, match=words):
        Store(location)


# --- migrations -------------------------------------------------------------------------


def test_a_new_store_is_migrated_to_head(store_url: str) -> None:
    Store(store_url).close()
    engine = _engine(store_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == TABLES
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert context.get_current_heads() == ("0008",)
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_metadata_the_queries_use(store_url: str) -> None:
    Store(store_url).close()
    engine = _engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_migrations_downgrade_to_empty_and_upgrade_again(store_url: str) -> None:
    Store(store_url).close()
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(sa.inspect(engine).get_table_names()) == {VERSION_TABLE}
    finally:
        engine.dispose()
    with Store(store_url) as store:
        assert store.history() == []
    engine = _engine(store_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_reopening_keeps_everything(store_url: str) -> None:
    with Store(store_url) as store:
        op = store.record_operation("drift", "web", "dev", "Succeeded", trigger="agent")
        store.audit("alice", "sync", "web/dev")
    with Store(store_url) as store:
        assert store.get_operation(op).kind == "drift"
        assert [e.actor for e in store.audit_events()] == ["alice"]


def _open_and_report(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    with Store(url) as store:
        store.audit("proc", "open", url)


def test_processes_opening_a_new_store_at_once_all_succeed(store_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(5)
    procs = [ctx.Process(target=_open_and_report, args=(store_url, barrier)) for _ in range(5)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0] * 5
    with Store(store_url) as store:
        assert len(store.audit_events()) == 5


# --- SQLite settings --------------------------------------------------------------------


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with Store(str(db)) as store:
        assert store.dialect == "sqlite"
        op = store.start_operation("sync", "web", "dev", holder="h", trigger="cli")
        raw = sqlite3.connect(db)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            raw.close()
        # foreign keys are enforced: a status cannot point at a missing operation
        with pytest.raises(StoreError, match="FOREIGN KEY"):
            store.set_status("web", "dev", operation_id=op + 100)


def test_a_busy_sqlite_database_waits_then_fails_with_a_retryable_error(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store(str(db)).close()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with Store(str(db), busy_timeout=0.3) as store:
            started = datetime.now()
            with pytest.raises(StoreError, match="database is locked") as caught:
                store.acquire_lock("x", "h", 10)
            assert (datetime.now() - started).total_seconds() >= 0.25
            assert caught.value.retryable
            assert caught.value.reason == "StoreFailed"
            assert store.lock_holder("x") is None  # WAL: readers are not blocked
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


# --- errors leave as StoreError ---------------------------------------------------------


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "state.db"
    bad.write_bytes(b"certainly not sqlite " * 100)
    with pytest.raises(StoreError, match="not a database") as caught:
        Store(str(bad))
    assert isinstance(caught.value.__cause__, sa.exc.DatabaseError)


def test_a_location_under_a_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="open"):
        Store(str(tmp_path / "file" / "sub" / "state.db"))


def test_an_unreachable_server_is_a_store_error_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://gs:s3cret-pw@/gitswarm?host={tmp_path}&port=1"
    with pytest.raises(StoreError) as caught:
        Store(url)
    assert "s3cret-pw" not in str(caught.value)
    assert "***" in str(caught.value)
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)


def test_database_errors_during_use_are_store_errors(store_url: str, store: Store) -> None:
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE audit_events"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="audit") as caught:
        store.audit("alice", "sync", "web/dev")
    assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        store.start_operation(
            "sync", "web", "dev", holder="h", trigger="cli", commit_time=datetime(2025, 1, 1)
        )


def test_a_store_migrated_by_a_newer_gitswarm_is_refused_clearly(store_url: str) -> None:
    Store(store_url).close()
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            version = sa.table(VERSION_TABLE, sa.column("version_num"))
            conn.execute(sa.update(version).values(version_num="0099"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match=r"schema \(0099\) is newer .* upgrade gitswarm"):
        Store(store_url)


def test_a_store_at_0001_keeps_its_baselines_through_later_migrations(store_url: str) -> None:
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
            conn.execute(
                sa.text(
                    "INSERT INTO baselines (app, env, service, spec, version, spec_hash, "
                    "revision, updated_at) VALUES ('web', 'dev', 'web', '{\"Name\": \"w\"}', 7, "
                    "'h', 'r1', '2025-06-01 12:00:00.000000')"
                )
            )
    finally:
        engine.dispose()
    with Store(store_url) as store:
        baseline = store.baselines("web", "dev")["web"]
    assert baseline.spec == {"Name": "w"} and baseline.version == 7
    assert baseline.rendered == {}


def test_schema_head_is_alembics_newest_migration() -> None:
    """Opening a current store compares against SCHEMA_HEAD without importing Alembic:
    a new migration must move SCHEMA_HEAD too, or every open would re-run Alembic."""
    from alembic.script import ScriptDirectory

    from gitswarm.store.schema import SCHEMA_HEAD

    assert set(ScriptDirectory.from_config(alembic_config()).get_heads()) == {SCHEMA_HEAD}


def test_a_current_store_opens_without_alembic(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "state.db"
    Store(str(path)).close()  # create and migrate
    probe = (
        "import sys; from gitswarm.store import Store; "
        f"Store({str(path)!r}).close(); print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
