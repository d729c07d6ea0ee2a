"""Who is calling the JSON API, and may they do this here? Called by every /api route.

Bearer tokens are looked up by their SHA-256 (``ApiSettings.tokens``): the presented
token is hashed and compared with ``hmac.compare_digest`` against every stored hash,
without stopping at the first match, so the time taken says nothing about which hash
came close. The token itself is never kept, logged or echoed.

No ``Authorization`` header: anonymous, a viewer of every environment if
``anonymous_read`` is on, else 401. A header that does not match: 401 (even with
``anonymous_read``: a wrong token is a mistake worth telling). A match whose roles or
environments do not cover the request: 403.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from gitswarm.api.errors import Forbidden, Unauthorized
from gitswarm.api.settings import ALL_ENVS, ApiSettings, Grant, Role

ANONYMOUS = Grant("anonymous", frozenset({"viewer"}), frozenset({ALL_ENVS}))


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request."""

    grant: Grant
    anonymous: bool = False

    @property
    def user(self) -> str:
        return self.grant.user

    def require(self, role: Role, env: str | None) -> None:
        """Forbidden unless this caller holds ``role`` in ``env`` (None: every env)."""
        if not self.grant.allows(role, env):
            where = f"environment {env!r}" if env is not None else "every environment"
            raise Forbidden(f"{self.user} may not act as {role} in {where}")

    def visible(self, env: str) -> bool:
        return self.grant.visible(env)


class Authenticator:
    """Turns an ``Authorization`` header into a ``Caller`` using the configured hashes."""

    def __init__(self, settings: ApiSettings) -> None:
        self._hashes = [(bytes.fromhex(k), grant) for k, grant in settings.tokens.items()]
        self._anonymous_read = settings.anonymous_read

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            if self._anonymous_read:
                return Caller(ANONYMOUS, anonymous=True)
            raise Unauthorized("this endpoint needs a bearer token (Authorization: Bearer ...)")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("only bearer tokens are accepted (Authorization: Bearer ...)")
        grant = self._match(token)
        if grant is None:
            raise Unauthorized("the bearer token is not valid")
        return Caller(grant)

    def _match(self, token: str) -> Grant | None:
        # The header arrives latin-1 decoded; its raw bytes are what the client hashed.
        digest = hashlib.sha256(token.encode("latin-1", errors="replace")).digest()
        found: Grant | None = None
        for stored, grant in self._hashes:
            if hmac.compare_digest(digest, stored) and found is None:
                found = grant
        return found
