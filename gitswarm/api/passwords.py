"""Password hashing for dashboard users: argon2id (argon2-cffi), the PHC winner and
OWASP's first choice. Called by sessions.py (sign-in) and `gitswarm user add/passwd`.

The hash string carries its own parameters, so old hashes keep verifying when the
defaults move; ``verify`` tells the caller when a hash should be redone. Signing in as a
user that does not exist verifies against a fixed dummy hash, so the time taken does not
tell which user names exist.

Each verification (and the one hash of the dummy) takes a *slot*: at most ``slots`` run
at once (``api.sign_in_slots``, 2), because each holds argon2's 64 MiB and a core for
its whole run. Forty sign-ins at once, from as many addresses (the throttle allows each
address five failures), held 2.5 GiB and every core, and the agent reconciling
production beside them could be OOM-killed. A sign-in that gets no slot within
``wait`` seconds (1) is refused with ``BusyError``: retryable, 503 with Retry-After.
A waiting sign-in holds one of the server's 40 threads (every API call, webhook and
page needs one too), so at most ``queue`` (4 per slot) wait; more are refused at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gitswarm.errors import BusyError

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; a bound keeps a sign-in request cheap to refuse
SLOTS = 2  # argon2 verifications at once (api.sign_in_slots): 64 MiB and a core each
WAIT = 1.0  # seconds a sign-in waits for a slot before it is refused
QUEUE_PER_SLOT = 4  # sign-ins that may wait for a slot, per slot; more are refused at once


class Passwords:
    """argon2id with argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB,
    3 passes), at most ``slots`` verifications at once; tests pass a cheaper
    ``PasswordHasher``. Thread-safe: sign-ins run on the server's thread pool."""

    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        *,
        slots: int = SLOTS,
        wait: float = WAIT,
        queue: int | None = None,
    ) -> None:
        self.hasher = hasher or PasswordHasher()
        self.wait = wait
        self.queue = QUEUE_PER_SLOT * slots if queue is None else queue
        self._slots = threading.BoundedSemaphore(slots)
        self._queue_lock = threading.Lock()
        self._waiting = 0  # threads waiting for a slot: each one of the server's 40
        # What a sign-in of no such user is checked against, so that it takes as long.
        # Made by the first sign-in, not here: one argon2 hash is 64 MiB, and every
        # agent made one at start-up, dashboard users or not (its peak RSS; issue 18).
        # Under its lock: two first sign-ins at once made one each.
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> tuple[bool, bool]:
        """(matches, needs rehash). ``None`` (no such user) takes as long and fails.
        ``BusyError`` when no slot came free within ``wait`` seconds."""
        if len(password) > MAX_LENGTH:
            return False, False
        with self._slot():
            dummy = self._dummy_hash()  # whoever signs in first pays for it, user or not
            if password_hash is None:
                self._check(dummy, password)
                return False, False
            ok = self._check(password_hash, password)
        return ok, ok and self.hasher.check_needs_rehash(password_hash)

    @contextmanager
    def _slot(self) -> Iterator[None]:
        with self._queue_lock:
            if self._waiting >= self.queue:
                raise BusyError(
                    f"the agent is checking as many sign-ins as it may at once, and "
                    f"{self.queue} more wait for a slot"
                )
            self._waiting += 1
        try:
            got = self._slots.acquire(timeout=self.wait)
        finally:
            with self._queue_lock:
                self._waiting -= 1
        if not got:
            raise BusyError(
                f"the agent is checking as many sign-ins as it may at once; none ended "
                f"within {self.wait:g} s"
            )
        try:
            yield
        finally:
            self._slots.release()

    def _dummy_hash(self) -> str:
        # Called holding a slot: the one hash is within the bound too.
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = self.hasher.hash("gitswarm: no such user")
            return self._dummy

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
