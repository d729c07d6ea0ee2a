"""Dashboard users, their sessions and the API tokens kept in the state store.

store/accounts.py writes and reads these records; api/ (sign-in, sessions, tokens) and
cli/ (`gitswarm user`, `gitswarm token`) use them. No record holds a secret: a password
is kept as its argon2 hash, a session or token as the SHA-256 of its random value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """``role`` in the environments ``envs`` (``*``: every environment)."""

    role: str
    envs: tuple[str, ...] = ("*",)

    def as_dict(self) -> dict[str, object]:
        return {"role": self.role, "envs": list(self.envs)}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str  # argon2id, PHC string format ($argon2id$v=19$...)
    bindings: tuple[RoleBinding, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: ``token_hash`` is the SHA-256 of the cookie's value."""

    token_hash: str
    user: str
    csrf: str  # the form token of this session (not a secret from its own browser)
    created_at: datetime
    expires_at: datetime
    address: str = ""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token created by `gitswarm token create`; only its SHA-256 is kept."""

    id: int
    token_hash: str
    user: str
    bindings: tuple[RoleBinding, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    description: str = ""
