"""`gitswarm user add/passwd/remove/list` and `gitswarm token create/list/revoke`: on the
state store, passwords argon2id-hashed and never taken as an argument, tokens shown
once and kept as SHA-256, every change audited, bad input named without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.api import ApiSettings, create_app, hash_token
from gitswarm.cli.main import cli
from gitswarm.model.account import RoleBinding
from gitswarm.store import Store
from tests.fake_agent import FakeAgent, client_for


def run(state: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--state", str(state)], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def test_user_add_keeps_an_argon2id_hash_and_the_roles(state: Path) -> None:
    code, out, _ = run(
        state,
        "user",
        "add",
        "alice",
        "--role",
        "deployer",
        "--env",
        "development",
        "--grant",
        "viewer",
        "--password-stdin",
        stdin="s3cret-enough\n",
    )
    assert code == 0, out
    assert out.strip() == "user alice added: deployer in development; viewer in *"
    with Store(str(state)) as store:
        user = store.get_user("alice")
        events = store.audit_events()
    assert user is not None and user.password_hash.startswith("$argon2id$")
    assert "s3cret-enough" not in user.password_hash
    assert user.bindings == (RoleBinding("deployer", ("development",)), RoleBinding("viewer"))
    assert [(e.action, e.target) for e in events] == [("user-add", "user alice")]
    code, out, _ = run(state, "user", "list")
    assert out == "alice\tdeployer in development; viewer in *\n"
    assert "argon2" not in out


def test_the_password_is_asked_twice_on_a_terminal(state: Path) -> None:
    code, out, _ = run(
        state, "user", "add", "bob", "--role", "viewer", stdin="first-password\nfirst-password\n"
    )
    assert code == 0, out
    code, out, err = run(
        state,
        "user",
        "add",
        "carol",
        "--role",
        "viewer",
        stdin="one-password\nanother-one\none-password\none-password\n",
    )
    assert code == 0
    assert "do not match" in out + err


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["user", "add", "dave", "--password-stdin"],
            "password-ok\n",
            "give a role: --role ROLE [--env ENV ...] or --grant ROLE[:ENV,...]",
        ),
        (
            ["user", "add", "dave", "--env", "x", "--password-stdin"],
            "password-ok\n",
            "--env needs a --role (e.g. --role deployer --env development)",
        ),
        (
            ["user", "add", "dave", "--grant", "root", "--password-stdin"],
            "password-ok\n",
            "--grant root: unknown role 'root'; roles are viewer, deployer, approver, admin",
        ),
        (
            ["user", "add", "dave", "--grant", "viewer:Prod!", "--password-stdin"],
            "password-ok\n",
            "--grant viewer:Prod!: 'Prod!' is not an environment name",
        ),
        (
            ["user", "add", "dave", "--role", "viewer", "--password-stdin"],
            "short\n",
            "the password must have at least 8 characters",
        ),
        (
            ["user", "add", "Dave Smith", "--role", "viewer", "--password-stdin"],
            "password-ok\n",
            "'Dave Smith' is not a user name: lowercase letters, digits and '-', at most 64",
        ),
        (
            ["user", "passwd", "nobody", "--password-stdin"],
            "password-ok\n",
            "no user 'nobody'; add it with `gitswarm user add nobody`",
        ),
        (["user", "remove", "nobody"], None, "no user 'nobody'"),
        (["token", "revoke", "7"], None, "no token 7; `gitswarm token list` shows them"),
        (
            ["token", "create", "--user", "ci", "--role", "viewer", "--expires", "soon"],
            None,
            "--expires must be like 30d, 12h, 2w, 90m or 45s, not 'soon'",
        ),
    ],
)
def test_bad_input_is_named_without_a_traceback(
    state: Path, args: list[str], stdin: str | None, message: str
) -> None:
    code, out, err = run(state, *args, stdin=stdin)
    assert code == (1 if message.startswith("no ") else 2)  # not found: 1, bad input: 2
    assert err.strip().endswith(message), err
    assert "Traceback" not in out + err


def test_a_taken_name_is_refused(state: Path) -> None:
    run(state, "user", "add", "erin", "--role", "viewer", "--password-stdin", stdin="password-1\n")
    code, _, err = run(
        state, "user", "add", "erin", "--role", "admin", "--password-stdin", stdin="password-2\n"
    )
    assert code == 2
    assert "user 'erin' already exists; change the password with `gitswarm user passwd erin`" in err


def test_passwd_and_remove_end_sessions_and_are_audited(state: Path) -> None:
    run(state, "user", "add", "fay", "--role", "viewer", "--password-stdin", stdin="password-1\n")
    with Store(str(state)) as store:
        from datetime import timedelta

        store.create_session("h" * 64, "fay", "c" * 20, timedelta(hours=1))
    code, out, _ = run(state, "user", "passwd", "fay", "--password-stdin", stdin="password-2\n")
    assert (code, out) == (0, "password of fay changed; its sessions ended\n")
    with Store(str(state)) as store:
        assert store.get_session("h" * 64) is None
    code, out, _ = run(state, "user", "remove", "fay")
    assert (code, out) == (0, "user fay removed\n")
    with Store(str(state)) as store:
        assert store.get_user("fay") is None
        actions = [e.action for e in store.audit_events()]
    assert actions == ["user-remove", "user-passwd", "user-add"]


def test_a_created_token_is_shown_once_kept_hashed_and_works_on_the_api(state: Path) -> None:
    code, out, err = run(
        state,
        "token",
        "create",
        "--user",
        "ci",
        "--role",
        "deployer",
        "--env",
        "development",
        "--expires",
        "30d",
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("gst_") and len(token) > 40
    assert "shown once" in err
    with Store(str(state)) as store:
        [record] = store.list_tokens()
        assert record.token_hash == hash_token(token)
        assert record.expires_at is not None
        app = create_app(FakeAgent(), ApiSettings(audit=store.audit, accounts=store))
        with client_for(app) as c:
            auth = {"Authorization": f"Bearer {token}"}
            assert c.post("/api/v1/apps/web/envs/development/sync", headers=auth).status_code == 202
            assert c.post("/api/v1/apps/web/envs/production/sync", headers=auth).status_code == 403
            assert (
                c.get("/api/v1/status", headers={"Authorization": "Bearer gst_x"}).status_code
                == 401
            )
    code, out, _ = run(state, "token", "list", "--json")
    listed = json.loads(out)["tokens"]
    assert [t["user"] for t in listed] == ["ci"]
    assert token not in out and hash_token(token) not in out
    code, out, _ = run(state, "token", "revoke", str(record.id))
    assert code == 0
    with Store(str(state)) as store:
        assert store.get_token(hash_token(token)) is None
        actions = [e.action for e in store.audit_events()]
        assert token not in json.dumps([e.details for e in store.audit_events()])
    assert actions == ["token-revoke", "sync", "sync", "token-create"]  # sync: requested, refused


def test_an_expired_token_is_refused(state: Path) -> None:
    from datetime import timedelta

    with Store(str(state)) as store:
        store.add_token(
            hash_token("gst_old"),
            "ci",
            (RoleBinding("viewer"),),
            created_by="t",
            ttl=timedelta(seconds=-1),
        )
        app = create_app(FakeAgent(), ApiSettings(audit=store.audit, accounts=store))
        with client_for(app) as c:
            r = c.get("/api/v1/status", headers={"Authorization": "Bearer gst_old"})
    assert r.status_code == 401
