"""Dashboard sign-in: passwords, throttling, session cookies and form tokens (CSRF).

Called by the dashboard's routes (dashboard/routes.py). The flow:

    POST /ui/login  -> throttle? -> argon2 slot? -> argon2 verify -> a new session in the store
                       (random 256-bit value in the cookie; its SHA-256 in the store)
    any page        -> cookie -> store session (not expired) -> user -> Caller
    any form post   -> the session's CSRF token must come back in the form
    POST /ui/logout -> the session is deleted

The cookie is HttpOnly, SameSite=Strict, Path=/ui, with Max-Age equal to the session's
lifetime, and Secure when the request came over TLS (or through a proxy that says so in
X-Forwarded-Proto) or ``secure_cookies`` is on. The sign-in form itself carries a token
of its own (double submit: a cookie and the same value in the form), so a page of
another site cannot sign a browser in as someone else.

Throttling, as Argo CD does it: after ``login_failures`` failed sign-ins (5) within
``login_window`` seconds (300), for one user name or from one address, further sign-ins
are refused until the oldest failure leaves the window — even with the right password.
Every failure and refusal is audited (actor: the user name tried, bounded) and counted
in ``gitswarm_login_failures_total{reason}``. The throttle lives in this process's
memory (one object, its own lock, bounded in size); agents behind a load balancer each
count their own.

Each argon2 verification holds 64 MiB and a core: at most ``sign_in_slots`` (2) run at
once (passwords.py). A sign-in that finds none free within a second (or too many
waiting already) is answered 503 with Retry-After, audited as ``login-busy`` (within
the audit budget of requests without credentials, refusals.py) and counted as
``{reason="busy"}``; it is no failure of that user or address for the throttle.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from gitswarm.api.auth import Caller, grants_of
from gitswarm.api.errors import RETRY_AFTER_SECONDS
from gitswarm.api.passwords import Passwords
from gitswarm.api.settings import ApiSettings
from gitswarm.errors import BusyError
from gitswarm.model.account import Session
from gitswarm.reconcile.metrics import Metrics

log = logging.getLogger("gitswarm.api")

COOKIE = "gitswarm_session"
LOGIN_COOKIE = "gitswarm_login"  # the sign-in form's own token (double submit)
MAX_NAME = 64


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", errors="replace")).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(a.encode("utf-8", errors="replace"), b.encode("utf-8", "replace"))


def shown_name(name: str) -> str:
    """A typed user name as it may go into the audit trail: printable, bounded."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in name)
    return clean[:MAX_NAME] or "(empty)"


class LoginThrottle:
    """Failed sign-ins per user name and per address within a sliding window."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limit, self.window, self.clock, self.max_keys = limit, window, clock, max_keys
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until a sign-in of ``user`` from ``address`` is allowed (0: now)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in (("user", user), ("address", address)):
                times = self._recent(key, now)
                if len(times) >= self.limit:
                    wait = max(wait, times[-self.limit] + self.window - now)
        return wait

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) + 2 > self.max_keys:
                self._prune(now)
            for key in (("user", user), ("address", address)):
                self._failures.setdefault(key, deque(maxlen=self.limit * 4)).append(now)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(("user", user), None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        if len(self._failures) + 2 > self.max_keys:  # still full: forget the older half
            by_age = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for key in by_age[: len(by_age) - self.max_keys // 2]:
                del self._failures[key]


@dataclass(frozen=True)
class SignIn:
    """What a sign-in attempt came to."""

    ok: bool
    message: str = ""
    status: int = 200
    cookie: str | None = None  # the new session's value, for the Set-Cookie header
    retry_after: int = 0


@dataclass(frozen=True)
class Viewer:
    """A signed-in browser: the caller for access.py and the session's form token."""

    caller: Caller
    session: Session

    @property
    def csrf(self) -> str:
        return self.session.csrf


class Sessions:
    def __init__(
        self,
        settings: ApiSettings,
        metrics: Metrics,
        passwords: Passwords | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.passwords = passwords or Passwords(settings.hasher, slots=settings.sign_in_slots)
        self.throttle = throttle or LoginThrottle(settings.login_failures, settings.login_window)

    @property
    def enabled(self) -> bool:
        return self.settings.accounts is not None

    def sign_in(self, name: str, password: str, address: str) -> SignIn:
        """Check a user name and password (blocking: argon2 and the store)."""
        accounts = self.settings.accounts
        who = shown_name(name)
        if accounts is None:
            return SignIn(False, "sign-in is off: the agent has no user store", 503)
        wait = self.throttle.retry_after(name, address)
        if wait > 0:
            self.metrics.login_failures.labels("throttled").inc()
            self._audit(who, "login-throttled", address)
            seconds = max(1, int(wait + 0.999))
            return SignIn(
                False,
                f"Too many failed sign-ins; try again in {seconds} s.",
                429,
                retry_after=seconds,
            )
        user = accounts.get_user(name) if 0 < len(name) <= MAX_NAME else None
        try:
            ok, _ = self.passwords.verify(user.password_hash if user else None, password)
        except BusyError:
            self.metrics.login_failures.labels("busy").inc()
            self._audit(who, "login-busy", address)
            return SignIn(
                False,
                "The agent is checking too many sign-ins at once; try again in "
                f"{RETRY_AFTER_SECONDS} s.",
                503,
                retry_after=RETRY_AFTER_SECONDS,
            )
        if user is None or not ok:
            self.throttle.failed(name, address)
            self.metrics.login_failures.labels("bad_credentials").inc()
            self._audit(who, "login-failed", address)
            return SignIn(False, "Wrong user name or password.", 401)
        self.throttle.succeeded(name)
        value = secrets.token_urlsafe(32)
        ttl = timedelta(seconds=self.settings.session_ttl)  # from the store's clock
        accounts.create_session(digest(value), user.name, secrets.token_urlsafe(32), ttl, address)
        self._audit(user.name, "login", address)
        return SignIn(True, cookie=value)

    def viewer(self, cookie: str | None) -> Viewer | None:
        """The signed-in browser of that cookie; None if none, unknown or expired."""
        accounts = self.settings.accounts
        if accounts is None or not cookie or len(cookie) > 200:
            return None
        session = accounts.get_session(digest(cookie))
        if session is None:
            return None
        user = accounts.get_user(session.user)
        if user is None:
            return None
        return Viewer(Caller(grants_of(user.name, user.bindings), via="session"), session)

    def sign_out(self, cookie: str | None) -> None:
        accounts = self.settings.accounts
        if accounts is not None and cookie:
            accounts.delete_session(digest(cookie))

    def csrf_refused(self, user: str, path: str, address: str) -> None:
        self._audit(user, "csrf-refused", address, {"path": path[:200]})

    def _audit(
        self, actor: str, action: str, address: str, extra: dict[str, str] | None = None
    ) -> None:
        details = {"via": "dashboard", "address": address[:100], **(extra or {})}
        try:
            self.settings.audit(actor, action, "dashboard", details)
        except Exception:  # noqa: BLE001 - a failed audit must not decide a sign-in
            log.warning("could not audit %s of %s", action, actor)
