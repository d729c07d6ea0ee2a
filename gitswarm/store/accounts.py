"""Dashboard users, browser sessions and API tokens (issue 15). I/O edge.

api/ signs people in against ``get_user`` and keeps their sessions here (so a session
survives an agent restart and is shared by agents on one PostgreSQL); cli/ manages users
(`gitswarm user add/passwd/remove`) and tokens (`gitswarm token create`). Callers hash
first: the store sees argon2 hashes of passwords and SHA-256 digests of session and
token values, never the values. Removing a user or changing its password ends its
sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from gitswarm.errors import NotFoundError, UsageError
from gitswarm.model.account import ApiToken, RoleBinding, Session, User
from gitswarm.model.instant import CLOCK_SKEW
from gitswarm.store.db import Database
from gitswarm.store.schema import api_tokens, sessions, users


def _bindings(data: Any) -> tuple[RoleBinding, ...]:
    return tuple(
        RoleBinding(str(b["role"]), tuple(str(e) for e in b.get("envs", ["*"]))) for b in data
    )


def _user(row: sa.RowMapping) -> User:
    return User(
        name=row["name"],
        password_hash=row["password_hash"],
        bindings=_bindings(row["bindings"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _token(row: sa.RowMapping) -> ApiToken:
    return ApiToken(
        id=row["id"],
        token_hash=row["token_hash"],
        user=row["username"],
        bindings=_bindings(row["bindings"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        expires_at=row["expires_at"],
        description=row["description"],
    )


class AccountsMixin:
    _db: Database

    # --- users -------------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str, bindings: Sequence[RoleBinding]) -> User:
        """A new user; UsageError if the name is taken."""
        now = self._db.now()
        with self._db.write(f"add user {name}") as conn:
            taken = conn.execute(sa.select(users.c.name).where(users.c.name == name)).first()
            if taken is not None:
                raise UsageError(
                    f"user {name!r} already exists; change the password with `gitswarm user "
                    f"passwd {name}` or remove it first"
                )
            conn.execute(
                sa.insert(users).values(
                    name=name,
                    password_hash=password_hash,
                    bindings=[b.as_dict() for b in bindings],
                    created_at=now,
                    updated_at=now,
                )
            )
        return User(name, password_hash, tuple(bindings), now, now)

    def get_user(self, name: str) -> User | None:
        with self._db.read("read a user") as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).mappings().first()
        return _user(row) if row is not None else None

    def list_users(self) -> list[User]:
        with self._db.read("list users") as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.name)).mappings().all()
        return [_user(r) for r in rows]

    def set_password(self, name: str, password_hash: str) -> None:
        """Replace a user's password hash and end every session of that user."""
        with self._db.write(f"set the password of {name}") as conn:
            done = conn.execute(
                sa.update(users)
                .where(users.c.name == name)
                .values(password_hash=password_hash, updated_at=self._db.now())
            ).rowcount
            if done != 1:
                raise NotFoundError(f"no user {name!r}; add it with `gitswarm user add {name}`")
            conn.execute(sa.delete(sessions).where(sessions.c.username == name))

    def remove_user(self, name: str) -> None:
        """Remove a user and its sessions (its API tokens stay until revoked)."""
        with self._db.write(f"remove user {name}") as conn:
            if conn.execute(sa.delete(users).where(users.c.name == name)).rowcount != 1:
                raise NotFoundError(f"no user {name!r}")
            conn.execute(sa.delete(sessions).where(sessions.c.username == name))

    # --- sessions ----------------------------------------------------------------------

    def create_session(
        self, token_hash: str, user: str, csrf: str, ttl: timedelta, address: str = ""
    ) -> Session:
        """A session that lasts ``ttl`` from now by the store's shared clock (PostgreSQL's
        on PostgreSQL: a host running ahead cannot hand out longer sessions)."""
        now = self._db.lease_now()
        with self._db.write("create a session") as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.expires_at < now))
            row = (
                conn.execute(
                    sa.insert(sessions)
                    .values(
                        token_hash=token_hash,
                        username=user,
                        csrf=csrf,
                        address=address[:100],
                        created_at=now,
                        expires_at=now + ttl,
                    )
                    .returning(sessions.c.created_at, sessions.c.expires_at)
                )
                .mappings()
                .one()
            )
        return Session(token_hash, user, csrf, row["created_at"], row["expires_at"], address[:100])

    def get_session(self, token_hash: str) -> Session | None:
        """The live session of that digest; None if unknown, expired or dated in the
        future (issued before the clock stepped back: it would outlive its TTL)."""
        now = self._db.lease_now()
        query = sa.select(sessions).where(
            sessions.c.token_hash == token_hash,
            sessions.c.expires_at > now,
            sessions.c.created_at <= now + CLOCK_SKEW,
        )
        with self._db.read("read a session") as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return Session(
            token_hash=row["token_hash"],
            user=row["username"],
            csrf=row["csrf"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            address=row["address"],
        )

    def delete_session(self, token_hash: str) -> None:
        with self._db.write("end a session") as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.token_hash == token_hash))

    # --- API tokens --------------------------------------------------------------------

    def add_token(
        self,
        token_hash: str,
        user: str,
        bindings: Sequence[RoleBinding],
        *,
        created_by: str,
        ttl: timedelta | None = None,
        description: str = "",
    ) -> ApiToken:
        """A token that lasts ``ttl`` (None: until revoked) from now by the store's shared
        clock (PostgreSQL's on PostgreSQL), as sessions do: a host running ahead cannot
        hand out a token that outlives its TTL, one running behind cannot keep an expired
        one alive (``get_token`` reads the same clock)."""
        now = self._db.lease_now()
        with self._db.write(f"create a token for {user}") as conn:
            row = (
                conn.execute(
                    sa.insert(api_tokens)
                    .values(
                        token_hash=token_hash,
                        username=user,
                        bindings=[b.as_dict() for b in bindings],
                        created_at=now,
                        created_by=created_by,
                        expires_at=None if ttl is None else now + ttl,
                        description=description,
                    )
                    .returning(api_tokens)
                )
                .mappings()
                .one()
            )
        return _token(row)

    def get_token(self, token_hash: str) -> ApiToken | None:
        """The token of that digest; None if unknown, expired by the store's shared clock,
        or, with an expiry, dated in the future (created before the clock stepped back,
        or by a host running ahead before tokens were dated by the shared clock: it would
        outlive its TTL by the size of the step). A token without expiry has no TTL to
        outlive: it lasts until revoked, whatever its date."""
        now = self._db.lease_now()
        query = sa.select(api_tokens).where(
            api_tokens.c.token_hash == token_hash,
            sa.or_(
                api_tokens.c.expires_at.is_(None),
                sa.and_(
                    api_tokens.c.expires_at > now,
                    api_tokens.c.created_at <= now + CLOCK_SKEW,
                ),
            ),
        )
        with self._db.read("read a token") as conn:
            row = conn.execute(query).mappings().first()
        return _token(row) if row is not None else None

    def list_tokens(self) -> list[ApiToken]:
        with self._db.read("list tokens") as conn:
            rows = conn.execute(sa.select(api_tokens).order_by(api_tokens.c.id)).mappings().all()
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: int) -> None:
        with self._db.write(f"revoke token {token_id}") as conn:
            if conn.execute(sa.delete(api_tokens).where(api_tokens.c.id == token_id)).rowcount != 1:
                raise NotFoundError(f"no token {token_id}; `gitswarm token list` shows them")
