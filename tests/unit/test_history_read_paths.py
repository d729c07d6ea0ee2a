"""`gitswarm history` reads the store without SQLAlchemy (store/quick.py) on SQLite and,
through psycopg2, on the real PostgreSQL (issue 13: history of a store starts at once;
bench/ times it): the same operations as ``Store.history``, changes and times included;
a process that never imports SQLAlchemy, psycopg 3 or asyncio; a store it cannot read as
it is left to the Store; errors that name the store without its password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from gitswarm.errors import StoreError
from gitswarm.model.operation import ServiceChange
from gitswarm.store import Store, quick
from harness.postgres import PrivatePostgres


@pytest.fixture
def filled(store_url: str) -> str:
    with Store(store_url) as store:
        for i in range(30):
            app, env = ("web", "prod") if i % 3 else ("db", "dev")
            store.record_operation(
                "sync", app, env, "Failed" if i % 7 == 0 else "Succeeded",
                trigger="poll", revision=f"{i:040x}", author="Ada <ada@example.org>",
                commit_time=datetime(2026, 11, 30, 10, i, tzinfo=UTC),
                reason="HealthTimeout" if i % 7 == 0 else None, message=f"run {i}: ünïcode",
                changes=(ServiceChange("api", "changed", ("image", "deploy.replicas")),
                         ServiceChange("worker", "created", ())) if i % 2 else (),
            )  # fmt: skip
        op = store.start_operation(
            "sync", "web", "prod", trigger="api", actor="carol", holder="h:1"
        )
        assert op > 0  # one still running: no finish time
    return store_url


@pytest.mark.parametrize(
    ("app", "env", "limit"),
    [
        (None, "prod", 50),
        ("web", "prod", 5),
        (None, "dev", 3),
        ("nope", "prod", 50),
        (None, None, 100),
    ],
)
def test_the_quick_read_gives_what_the_store_gives(
    filled: str, app: str | None, env: str | None, limit: int
) -> None:
    mine = quick.history(filled, app=app, env=env, limit=limit)
    assert mine is not None  # read without a Store, on SQLite and on PostgreSQL alike
    with Store(filled) as store:
        assert mine == store.history(app=app, env=env, limit=limit)


def test_the_command_never_imports_sqlalchemy_nor_psycopg_3(filled: str) -> None:
    code = (
        "import sys\n"
        "from gitswarm.cli.main import cli\n"
        "try:\n"
        "    cli(['history', '--env', 'prod', '--json'], prog_name='gitswarm')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "heavy = ('sqlalchemy', 'alembic', 'psycopg', 'psycopg_binary', 'asyncio')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
        "print('PSYCOPG2', 'psycopg2' in sys.modules, file=sys.stderr)\n"
    )
    env = {**os.environ, "GITSWARM_STATE": filled}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stderr
    assert f"PSYCOPG2 {'://' in filled}" in proc.stderr
    with Store(filled) as store:
        expected = [o.as_dict() for o in store.history(env="prod", limit=20)]
    assert json.loads(proc.stdout)["operations"] == expected


def test_a_store_to_create_or_migrate_is_left_to_the_store(store_url: str) -> None:
    assert quick.history(store_url, env="prod") is None  # no file; an empty schema
    if "://" not in store_url:
        assert not os.path.exists(store_url)


@pytest.mark.postgres
def test_an_error_names_the_store_without_its_password(
    postgres_server: PrivatePostgres, postgres_url: str
) -> None:
    url = postgres_server.url("no_such_database").replace("postgres@", "postgres:s3cret@")
    with pytest.raises(StoreError) as caught:
        quick.history(url, env="prod")
    message = str(caught.value)
    assert "s3cret" not in message
    assert message.startswith("state store postgresql+psycopg://postgres:***@/no_such_database?")
    assert "read history" in message and 'database "no_such_database"' in message


def test_other_drivers_are_left_to_the_store() -> None:
    assert quick.history("postgresql+psycopg2://u@/db", env="prod") is None
    assert quick.history("mysql://u@/db", env="prod") is None
