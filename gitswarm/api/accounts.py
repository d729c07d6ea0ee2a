"""What the HTTP side needs of the store for people: users, sessions, store-kept tokens.

``Store`` (store/accounts.py) implements it; unit tests pass an in-memory one. Every
argument and answer is hashed already (argon2 for passwords, SHA-256 for session and
token values): the values themselves never leave sessions.py and auth.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from gitswarm.model.account import ApiToken, Session, User


class Accounts(Protocol):
    def get_user(self, name: str) -> User | None: ...

    def create_session(
        self, token_hash: str, user: str, csrf: str, ttl: timedelta, address: str = ""
    ) -> Session: ...

    def get_session(self, token_hash: str) -> Session | None: ...

    def delete_session(self, token_hash: str) -> None: ...

    def get_token(self, token_hash: str) -> ApiToken | None: ...
