"""`gitswarm user` and `gitswarm token`: the people and API tokens of the dashboard and
the HTTP API, kept in the state store (store/accounts.py). Run on the agent's host (or
anywhere that reaches its PostgreSQL); the agent reads them on every request, so a
change takes effect at once, no restart.

    gitswarm user add alice --role deployer --env development --grant viewer
    gitswarm user passwd alice          # asks twice; --password-stdin for scripts
    gitswarm user remove alice          # ends her sessions too
    gitswarm user list
    gitswarm token create --user ci --role deployer --env development [--expires 90d]
    gitswarm token list / revoke ID

Passwords are read from the terminal (twice, hidden) or from standard input, never
from an argument (which `ps` shows to every user of the host); only their argon2id
hash is stored. A token is printed once, here, and only its SHA-256 is stored. Every
change is audited with the operating-system user who made it (or GITSWARM_ACTOR).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from gitswarm.cli.output import emit_json, guarded
from gitswarm.errors import UsageError

if TYPE_CHECKING:
    from gitswarm.model.account import RoleBinding

ROLES = ("viewer", "deployer", "approver", "admin")
STATE_HELP = "State store: a SQLite path or a database URL (default: the user's state dir)."


def _state(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--state", default=None, envvar="GITSWARM_STATE", help=STATE_HELP)(fn)


def _json(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)


def _roles(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--grant",
        "grants",
        multiple=True,
        metavar="ROLE[:ENV,ENV]",
        help="One more role binding (repeatable), e.g. viewer or approver:staging,production.",
    )(fn)
    fn = click.option(
        "--env",
        "envs",
        multiple=True,
        metavar="ENV",
        help="Environment the --role holds in (repeatable; default: every environment).",
    )(fn)
    return click.option(
        "--role", type=click.Choice(ROLES), default=None, help="The role in the --env(s)."
    )(fn)


def _actor() -> str:
    return os.environ.get("GITSWARM_ACTOR") or getpass.getuser()


def bindings_of(
    role: str | None, envs: Sequence[str], grants: Sequence[str]
) -> tuple[RoleBinding, ...]:
    """--role/--env and every --grant as role bindings; UsageError naming the bad one."""
    from gitswarm.model.account import RoleBinding
    from gitswarm.repo.config import NAME_PATTERN

    if envs and role is None:
        raise UsageError("--env needs a --role (e.g. --role deployer --env development)")
    specs: list[tuple[str, str, tuple[str, ...]]] = []
    if role is not None:
        specs.append((f"--role {role}", role, tuple(envs) or ("*",)))
    for grant in grants:
        name, _, where = grant.partition(":")
        scope = tuple(e.strip() for e in where.split(",") if e.strip()) if where else ("*",)
        specs.append((f"--grant {grant}", name.strip(), scope))
    if not specs:
        raise UsageError("give a role: --role ROLE [--env ENV ...] or --grant ROLE[:ENV,...]")
    out = []
    for origin, name, scope in specs:
        if name not in ROLES:
            raise UsageError(f"{origin}: unknown role {name!r}; roles are {', '.join(ROLES)}")
        for env in scope:
            if env != "*" and not NAME_PATTERN.match(env):
                raise UsageError(f"{origin}: {env!r} is not an environment name")
        out.append(RoleBinding(name, scope))
    return tuple(out)


def _user_name(name: str) -> str:
    from gitswarm.repo.config import NAME_PATTERN

    if not NAME_PATTERN.match(name) or len(name) > 64:
        raise UsageError(
            f"{name!r} is not a user name: lowercase letters, digits and '-', at most 64"
        )
    return name


def _new_password(from_stdin: bool) -> str:
    from gitswarm.api.passwords import password_problem

    if from_stdin:
        lines = sys.stdin.read().splitlines()
        password = lines[0] if lines else ""
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password)
    if problem is not None:
        raise UsageError(problem)
    return password


def _bindings_text(bindings: Sequence[RoleBinding]) -> str:
    return "; ".join(f"{b.role} in {', '.join(b.envs)}" for b in bindings)


@click.group()
def user() -> None:
    """Dashboard users: add, change the password of, remove and list them."""


@user.command("add")
@click.argument("name")
@_roles
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_state
@_json
def user_add(
    name: str,
    role: str | None,
    envs: tuple[str, ...],
    grants: tuple[str, ...],
    password_stdin: bool,
    state: str | None,
    as_json: bool,
) -> None:
    """Add user NAME with a password (asked twice) and its roles per environment."""

    def run() -> None:
        from gitswarm.api.passwords import Passwords
        from gitswarm.store import Store

        bindings = bindings_of(role, envs, grants)
        password = _new_password(password_stdin)
        with Store(state) as store:
            store.add_user(_user_name(name), Passwords().hash(password), bindings)
            store.audit(
                _actor(),
                "user-add",
                f"user {name}",
                {"via": "cli", "bindings": [b.as_dict() for b in bindings]},
            )
        if as_json:
            emit_json({"ok": True, "user": name, "bindings": [b.as_dict() for b in bindings]})
        else:
            click.echo(f"user {name} added: {_bindings_text(bindings)}")

    guarded(as_json, run)


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_state
@_json
def user_passwd(name: str, password_stdin: bool, state: str | None, as_json: bool) -> None:
    """Set a new password for NAME; its signed-in sessions end."""

    def run() -> None:
        from gitswarm.api.passwords import Passwords
        from gitswarm.store import Store

        password = _new_password(password_stdin)
        with Store(state) as store:
            store.set_password(name, Passwords().hash(password))
            store.audit(_actor(), "user-passwd", f"user {name}", {"via": "cli"})
        if as_json:
            emit_json({"ok": True, "user": name})
        else:
            click.echo(f"password of {name} changed; its sessions ended")

    guarded(as_json, run)


@user.command("remove")
@click.argument("name")
@_state
@_json
def user_remove(name: str, state: str | None, as_json: bool) -> None:
    """Remove user NAME and end its sessions."""

    def run() -> None:
        from gitswarm.store import Store

        with Store(state) as store:
            store.remove_user(name)
            store.audit(_actor(), "user-remove", f"user {name}", {"via": "cli"})
        if as_json:
            emit_json({"ok": True, "user": name})
        else:
            click.echo(f"user {name} removed")

    guarded(as_json, run)


@user.command("list")
@_state
@_json
def user_list(state: str | None, as_json: bool) -> None:
    """Users and their roles (never a password or its hash)."""

    def run() -> None:
        from gitswarm.store import Store

        with Store(state) as store:
            users = store.list_users()
        if as_json:
            emit_json(
                {
                    "ok": True,
                    "users": [
                        {
                            "name": u.name,
                            "bindings": [b.as_dict() for b in u.bindings],
                            "created_at": u.created_at.isoformat(),
                        }
                        for u in users
                    ],
                }
            )
            return
        for u in users:
            click.echo(f"{u.name}\t{_bindings_text(u.bindings)}")

    guarded(as_json, run)


@click.group()
def token() -> None:
    """API tokens kept in the state store: create (shown once), list, revoke."""


@token.command("create")
@click.option("--user", "user_name", required=True, help="Whom the token acts as (audit).")
@_roles
@click.option("--expires", default=None, metavar="DURATION", help="e.g. 90d, 12h (default: never).")
@click.option("--description", default="", help="What the token is for.")
@_state
@_json
def token_create(
    user_name: str,
    role: str | None,
    envs: tuple[str, ...],
    grants: tuple[str, ...],
    expires: str | None,
    description: str,
    state: str | None,
    as_json: bool,
) -> None:
    """Create an API token for --user with --role in --env; printed once, kept hashed."""

    def run() -> None:
        import secrets

        from gitswarm.api.settings import hash_token
        from gitswarm.dora.window import parse_duration
        from gitswarm.store import Store

        bindings = bindings_of(role, envs, grants)
        ttl = None
        if expires is not None:
            try:
                ttl = parse_duration(expires, "--expires")  # from the store's clock
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        value = "gst_" + secrets.token_urlsafe(32)
        with Store(state) as store:
            record = store.add_token(
                hash_token(value),
                _user_name(user_name),
                bindings,
                created_by=_actor(),
                ttl=ttl,
                description=description[:200],
            )
            store.audit(
                _actor(),
                "token-create",
                f"token {record.id}",
                {"via": "cli", "user": user_name, "bindings": [b.as_dict() for b in bindings]},
            )
        if as_json:
            emit_json(
                {
                    "ok": True,
                    "id": record.id,
                    "token": value,
                    "user": user_name,
                    "expires_at": record.expires_at.isoformat() if record.expires_at else None,
                }
            )
            return
        click.echo(value)
        click.echo(
            f"token {record.id} for {user_name}: {_bindings_text(bindings)}; "
            "shown once, only its SHA-256 is kept",
            err=True,
        )

    guarded(as_json, run)


@token.command("list")
@_state
@_json
def token_list(state: str | None, as_json: bool) -> None:
    """Tokens: id, user, roles, expiry (never the token)."""

    def run() -> None:
        from gitswarm.store import Store

        with Store(state) as store:
            tokens = store.list_tokens()
        rows = [
            {
                "id": t.id,
                "user": t.user,
                "bindings": [b.as_dict() for b in t.bindings],
                "created_by": t.created_by,
                "created_at": t.created_at.isoformat(),
                "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                "description": t.description,
            }
            for t in tokens
        ]
        if as_json:
            emit_json({"ok": True, "tokens": rows})
            return
        for t in tokens:
            until = t.expires_at.isoformat() if t.expires_at else "never"
            click.echo(f"{t.id}\t{t.user}\t{_bindings_text(t.bindings)}\texpires {until}")

    guarded(as_json, run)


@token.command("revoke")
@click.argument("token_id", type=int)
@_state
@_json
def token_revoke(token_id: int, state: str | None, as_json: bool) -> None:
    """Revoke token TOKEN_ID (from `gitswarm token list`): refused from now on."""

    def run() -> None:
        from gitswarm.store import Store

        with Store(state) as store:
            store.revoke_token(token_id)
            store.audit(_actor(), "token-revoke", f"token {token_id}", {"via": "cli"})
        if as_json:
            emit_json({"ok": True, "id": token_id})
        else:
            click.echo(f"token {token_id} revoked")

    guarded(as_json, run)
