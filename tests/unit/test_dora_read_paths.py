"""`gitswarm dora` and `GET /api/v1/dora` read the store two ways — the command on a
connection of its own without SQLAlchemy (store/quick.py: sqlite3, or psycopg2 directly),
the agent through its Store — and give the same answer, on SQLite and on a real
PostgreSQL: the same JSON from the command and from the HTTP API of a real agent over
the same store, for the synthetic history of test_dora_metrics and the window-edge
cases of test_store_dora. The command's process never imports SQLAlchemy; a store it
cannot read as it is (missing, not migrated) is left to the Store; its errors name the
store without the password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gitswarm.api import ApiSettings, Grant, create_app, hash_token
from gitswarm.cli.main import cli
from gitswarm.dora import DoraSettings
from gitswarm.errors import StoreError
from gitswarm.model.operation import Operation
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store, quick
from gitswarm.swarm.fake import FakeSwarm
from harness.postgres import PrivatePostgres
from tests.fake_agent import client_for
from tests.gitops import GitOpsRepo, service
from tests.unit.test_dora_metrics import CHANGED, HISTORY, UNCHANGED, WINDOW, c, op
from tests.unit.test_store_dora import Clock, record

TOKEN = "tok-prod-viewer-read-paths"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SINCE, UNTIL = WINDOW.since.isoformat(), WINDOW.until.isoformat()

# test_dora_metrics' history, and what the window's start cuts (test_store_dora):
# queue failing before the read, a failure inside continuing it; db deploying across
# the start of the read
EDGES = [
    op(101, "sync", "Failed", "05-31 20:00", "05-31 20:05", app="queue", reason="HealthTimeout"),
    op(102, "sync", "Failed", "06-01 00:10", "06-01 00:15", app="queue", reason="TasksFailing"),
    op(103, "sync", "Succeeded", "06-01 00:30", "06-01 00:31", app="queue", changes=CHANGED),
    op(104, "sync", "Succeeded", "05-31 22:59", "06-01 00:00:30", app="db", changes=CHANGED,
       commits=(c("d9", "05-31 22:00"),)),
    op(105, "sync", "Succeeded", "06-03 10:00", "06-03 10:01", app="db", changes=UNCHANGED),
]  # fmt: skip


def renumbered(ops: list[Operation]) -> list[Operation]:
    """``ops`` numbered from 1 in order of start, as a fresh store numbers them."""
    ordered = sorted(ops, key=lambda o: (o.started_at, o.id))
    return [
        Operation(**{**{f: getattr(o, f) for f in o.__slots__}, "id": i})  # type: ignore[arg-type]
        for i, o in enumerate(ordered, start=1)
    ]


@pytest.fixture
def filled(store_url: str) -> str:
    clock = Clock()
    with Store(store_url, clock=clock) as store:
        for one in renumbered([*HISTORY, *EDGES]):
            record(store, clock, one)
        store.set_status("db", "prod", sync="Synced", health="Healthy")
    return store_url


def command(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["dora", *args, "--json"], prog_name="gitswarm")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    report: dict[str, Any] = json.loads(result.stdout)["dora"]
    return report


def test_the_command_and_the_api_give_the_same_answer(
    filled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "dora")
    repo.compose({"web": service()})
    repo.commit("v1")
    grants = {hash_token(TOKEN): Grant("pat", frozenset({"viewer"}), frozenset({"prod"}))}
    windows = [
        {"since": SINCE, "until": UNTIL},
        {"since": SINCE, "until": UNTIL, "app": "queue"},
        {"since": "2025-06-01T00:30:00+00:00", "until": "2025-06-04T09:40:00+00:00"},
        {"since": SINCE, "until": UNTIL, "failure_window": "0s", "drift_threshold": "10m"},
    ]
    with Store(filled) as store:
        source = RepoSource.open(str(repo.path))
        agent = Agent(
            source=source,
            store=store,
            reconciler=Reconciler(source, store, lambda _t: FakeSwarm()),
            settings=AgentSettings(events=False),
        )
        with client_for(create_app(agent, ApiSettings(tokens=grants))) as http:
            for params in windows:
                r = http.get("/api/v1/dora", params={"env": "prod", **params}, headers=AUTH)
                assert r.status_code == 200, r.text
                args = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
                assert command("--env", "prod", "--state", filled, *args) == r.json()["dora"]
    # and the figures are the window's, with its edges
    got = command("--env", "prod", "--state", filled, f"--since={SINCE}", f"--until={UNTIL}")
    assert got["until"] == UNTIL
    assert got["deployment_frequency"]["deployments"] == 11 + 2  # queue 103, db 104
    restores = [(i["app"], i["seconds"]) for i in got["time_to_restore"]["list"]]
    assert restores == [("web", 180), ("web", 1200)]  # not queue's: it began before


def test_the_command_reads_the_store_as_the_store_does(filled: str) -> None:
    """quick.dora and Store.dora over the same rows: equal reports, for each window."""
    with Store(filled) as store:
        for since, app in [(WINDOW.since, None), (WINDOW.since, "db"), (WINDOW.since, "nope")]:
            settings = DoraSettings(since, WINDOW.until, failure_window=timedelta(minutes=90))
            mine = quick.dora(filled, "prod", app, settings)
            assert mine is not None
            theirs = store.dora(
                "prod", app, since=since, until=WINDOW.until, failure_window=timedelta(minutes=90)
            )
            assert mine.as_dict() == theirs.as_dict()


def test_the_command_never_imports_sqlalchemy_nor_psycopg_3(filled: str) -> None:
    """Nor, on PostgreSQL, psycopg 3 (the Store's driver: its import was a third of the
    command's CPU) or the asyncio it brings: the command reads through psycopg2."""
    code = (
        "import sys\n"
        "from gitswarm.cli.main import cli\n"
        "try:\n"
        f"    cli(['dora', '--env', 'prod', '--since', {SINCE!r}, '--until', {UNTIL!r},"
        " '--json'])\n"
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
    assert json.loads(proc.stdout)["dora"]["deployment_frequency"]["deployments"] == 13


def test_a_store_to_create_or_migrate_is_left_to_the_store(store_url: str) -> None:
    """Nothing there yet (no file; an empty PostgreSQL schema): the quick read says so
    and writes nothing; the command then opens a Store, which creates it."""
    assert quick.dora(store_url, "prod", None, WINDOW) is None
    if "://" not in store_url:
        assert not Path(store_url).exists()
    got = command("--env", "prod", "--state", store_url, f"--since={SINCE}", f"--until={UNTIL}")
    assert got["deployment_frequency"]["deployments"] == 0
    with Store(store_url) as store:
        assert store.history() == []


@pytest.mark.postgres
def test_an_error_names_the_store_without_its_password(
    postgres_server: PrivatePostgres, postgres_url: str
) -> None:
    url = postgres_server.url("no_such_database").replace("postgres@", "postgres:s3cret@")
    with pytest.raises(StoreError) as caught:
        quick.dora(url, "prod", None, WINDOW)
    message = str(caught.value)
    assert "s3cret" not in message
    assert message.startswith("state store postgresql+psycopg://postgres:***@/no_such_database?")
    assert "read the history for DORA" in message and 'database "no_such_database"' in message


@pytest.mark.postgres
def test_a_password_given_as_a_parameter_is_hidden_too(
    postgres_server: PrivatePostgres, postgres_url: str
) -> None:
    url = postgres_server.url("no_such_database") + "&password=s3/cr@t&sslmode=disable"
    with pytest.raises(StoreError) as caught:
        quick.dora(url.replace("postgres@", "postgres:p4ss/w@rd@"), "prod", None, WINDOW)
    message = str(caught.value)
    assert "s3/cr@t" not in message and "p4ss" not in message and "w@rd" not in message
    assert "postgres:***@/no_such_database?" in message and "&password=***&" in message


def test_other_urls_are_left_to_the_store(tmp_path: Path) -> None:
    """A SQLAlchemy URL of SQLite, or of another PostgreSQL driver: the Store's."""
    path = tmp_path / "state.db"
    Store(str(path)).close()
    assert quick.dora(f"sqlite:///{path}", "prod", None, WINDOW) is None
    assert quick.dora("postgresql+psycopg2://u@/db", "prod", None, WINDOW) is None
    assert quick.dora(str(path), "prod", None, WINDOW) is not None


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("soon", "--until must be a duration such as 30d"),
        ("2999-01-01", "--until 2999-01-01 is in the future"),
        ("2025-05-01", "--until 2025-05-01 is not after --since (2025-06-01T00:00:00+00:00)"),
    ],
)
def test_a_bad_until_is_a_usage_error(tmp_path: Path, until: str, message: str) -> None:
    state = str(tmp_path / "state.db")
    result = CliRunner().invoke(
        cli, ["dora", "--env", "prod", "--since", SINCE, "--until", until, "--state", state],
        prog_name="gitswarm",
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error [UsageError]: {message}"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not Path(state).exists()  # refused before the store is opened


def test_a_bad_until_is_400_naming_the_parameter() -> None:
    from tests.fake_agent import FakeAgent

    agent = FakeAgent()
    grants = {hash_token(TOKEN): Grant("pat", frozenset({"viewer"}), frozenset({"prod"}))}
    with client_for(create_app(agent, ApiSettings(tokens=grants))) as http:
        r = http.get("/api/v1/dora", params={"env": "prod", "until": "soon"}, headers=AUTH)
        assert r.status_code == 400
        assert r.json()["error"]["message"].startswith("until must be a duration such as 30d")
        future = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        r = http.get("/api/v1/dora", params={"env": "prod", "until": future}, headers=AUTH)
        assert r.status_code == 400 and "is in the future" in r.json()["error"]["message"]
    assert agent.dora_calls == []
