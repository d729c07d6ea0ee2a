"""The state store on a real PostgreSQL server, beyond the suite every store test already
runs there: URL forms, the default location pointing at a server, a dedicated database,
surviving the server dropping its connections; and the harness's private cluster itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gitswarm.store import Store
from harness import postgres
from harness.postgres import PrivatePostgres

pytestmark = pytest.mark.postgres


def test_plain_postgresql_urls_use_psycopg(postgres_url: str) -> None:
    for scheme in ("postgresql://", "postgres://"):
        url = postgres_url.replace("postgresql+psycopg://", scheme)
        with Store(url) as store:
            assert store.dialect == "postgresql"
            assert store.location.startswith("postgresql+psycopg://")
            store.audit("alice", "open", scheme)


def test_the_location_never_shows_the_password(postgres_url: str) -> None:
    url = postgres_url.replace("postgres@", "postgres:hunter2@")  # trust auth ignores it
    with Store(url) as store:
        assert "hunter2" not in store.location and "***" in store.location
        assert "hunter2" not in repr(store)


def test_gitswarm_state_may_name_a_server(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_STATE", postgres_url)
    with Store() as store:
        assert store.dialect == "postgresql"
        op = store.record_operation("sync", "web", "dev", "Succeeded", trigger="cli")
    with Store(postgres_url) as store:
        assert store.get_operation(op).kind == "sync"


def test_the_store_survives_the_server_dropping_its_connections(
    postgres_server: PrivatePostgres, postgres_url: str
) -> None:
    with Store(postgres_url) as store:
        assert store.acquire_lock("agent", "a", 60)
        postgres_server.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = 'gitswarm' AND pid <> pg_backend_pid()"
        )
        info = store.lock_holder("agent")  # a pooled connection is dead: replaced
        assert info is not None and info.holder == "a"
        assert store.release_lock("agent", "a")


# --- the harness itself -----------------------------------------------------------------


def test_a_private_cluster_answers_and_leaves_nothing_behind() -> None:
    server = postgres.start()
    try:
        assert server.sql("SELECT current_setting('listen_addresses')") == "\n"  # no TCP
        url = server.create_schema("scratch")
        assert url.endswith("&options=-csearch_path%3Dscratch")
        assert server.sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'scratch'") == "1\n"
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None
    assert not server.root.exists()


def test_a_cluster_whose_owner_was_killed_is_reaped() -> None:
    code = (
        "import os, signal\n"
        "from harness import postgres\n"
        "server = postgres.start()\n"
        "print(server.root, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    root = Path(proc.stdout.strip())
    postmaster = int((root / "data" / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, 0)  # orphaned, still running
    assert root in postgres.reap_stale()
    assert not root.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(postmaster, 0)
