"""Password hashing for dashboard users: argon2id (argon2-cffi), the PHC winner and
OWASP's first choice. Called by sessions.py (sign-in) and `gitswarm user add/passwd`.

The hash string carries its own parameters, so old hashes keep verifying when the
defaults move; ``verify`` tells the caller when a hash should be redone. Signing in as a
user that does not exist verifies against a fixed dummy hash, so the time taken does not
tell which user names exist.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; a bound keeps a sign-in request cheap to refuse


class Passwords:
    """argon2id with argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB,
    3 passes); tests pass a cheaper ``PasswordHasher``."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        # What a sign-in of no such user is checked against, so that it takes as long.
        # Made by the first sign-in, not here: one argon2 hash is 64 MiB, and every
        # agent made one at start-up, dashboard users or not (its peak RSS; issue 18).
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> tuple[bool, bool]:
        """(matches, needs rehash). ``None`` (no such user) takes as long and fails."""
        if len(password) > MAX_LENGTH:
            return False, False
        if self._dummy is None:  # whoever signs in first pays for it, user or not
            self._dummy = self.hasher.hash("gitswarm: no such user")
        if password_hash is None:
            self._check(self._dummy, password)
            return False, False
        ok = self._check(password_hash, password)
        return ok, ok and self.hasher.check_needs_rehash(password_hash)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password must have at most {MAX_LENGTH} characters"
    return None
