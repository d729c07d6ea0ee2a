"""Who is calling, and may they do this here? Called by every /api route and every page.

Bearer tokens are looked up by their SHA-256: first among the hashes of the agent config
(``ApiSettings.tokens``), each compared with ``hmac.compare_digest`` without stopping at
the first match, so the time taken says nothing about which hash came close; then among
the tokens of `gitswarm token create`, kept in the store by the same digest (an indexed
look-up of a digest of a random value tells a guesser nothing about the value). The
token itself is never kept, logged or echoed.

No ``Authorization`` header: anonymous, a viewer of every environment if
``anonymous_read`` is on, else 401. A header that does not match: 401 (even with
``anonymous_read``: a wrong token is a mistake worth telling). A match whose roles or
environments do not cover the request: 403 (``access.authorize``).

A browser signs in instead (sessions.py) and becomes a ``Caller`` with the role bindings
of its user; both kinds of caller go through the same ``access.authorize``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gitswarm.api.errors import Forbidden, Unauthorized
from gitswarm.api.settings import ALL_ENVS, ApiSettings, Grant, Role
from gitswarm.errors import ConfigError
from gitswarm.model.account import RoleBinding

log = logging.getLogger("gitswarm.api")

ANONYMOUS = Grant("anonymous", frozenset({"viewer"}), frozenset({ALL_ENVS}))

Via = Literal["token", "session", "anonymous", "cli"]


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request: one or more grants of one user."""

    grants: tuple[Grant, ...]
    anonymous: bool = False
    via: Via = "token"

    @property
    def user(self) -> str:
        return self.grants[0].user if self.grants else "anonymous"

    def allows(self, role: Role, env: str | None) -> bool:
        return any(g.allows(role, env) for g in self.grants)

    def require(self, role: Role, env: str | None) -> None:
        """Forbidden unless this caller holds ``role`` in ``env`` (None: every env)."""
        if not self.allows(role, env):
            where = f"environment {env!r}" if env is not None else "every environment"
            raise Forbidden(f"{self.user} may not act as {role} in {where}")

    def visible(self, env: str) -> bool:
        return any(g.visible(env) for g in self.grants)


def grants_of(user: str, bindings: Sequence[RoleBinding]) -> tuple[Grant, ...]:
    """A stored user's or token's role bindings as grants; a binding the code no longer
    knows (a role renamed) grants nothing and is logged, never a crash."""
    out = []
    for binding in bindings:
        try:
            out.append(Grant(user, frozenset({binding.role}), frozenset(binding.envs)))  # type: ignore[arg-type]
        except ConfigError as exc:
            log.warning("ignoring a role binding of %s: %s", user, exc.message)
    return tuple(out)


class Authenticator:
    """Turns an ``Authorization`` header into a ``Caller``: configured hashes, then the
    store's tokens (when the settings have a store)."""

    def __init__(self, settings: ApiSettings) -> None:
        self._hashes = [(bytes.fromhex(k), grant) for k, grant in settings.tokens.items()]
        self._anonymous_read = settings.anonymous_read
        self._accounts = settings.accounts

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            if self._anonymous_read:
                return Caller((ANONYMOUS,), anonymous=True, via="anonymous")
            raise Unauthorized("this endpoint needs a bearer token (Authorization: Bearer ...)")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("only bearer tokens are accepted (Authorization: Bearer ...)")
        caller = self._match(token)
        if caller is None:
            raise Unauthorized("the bearer token is not valid")
        return caller

    def _match(self, token: str) -> Caller | None:
        # The header arrives latin-1 decoded; its raw bytes are what the client hashed.
        digest = hashlib.sha256(token.encode("latin-1", errors="replace")).digest()
        found: Grant | None = None
        for stored, grant in self._hashes:
            if hmac.compare_digest(digest, stored) and found is None:
                found = grant
        if found is not None:
            return Caller((found,))
        if self._accounts is None:
            return None
        record = self._accounts.get_token(digest.hex())
        if record is None:
            return None
        grants = grants_of(record.user, record.bindings)
        return Caller(grants) if grants else None
