"""How the HTTP side is configured: bind address, API tokens, webhook secrets, limits.

``ApiSettings`` is what ``create_app`` and ``gitswarm serve`` take; every field has a
safe default (loopback only, no tokens, no webhooks, reads closed). ``settings_from_mapping``
builds one from the ``api:`` section of the serve config file (shape in its docstring).

Tokens are never stored: only the SHA-256 of each one, as lowercase hex. Webhook secrets
must be kept (HMAC needs them); they are hidden from ``repr`` so a logged settings object
shows which providers are on, never a secret.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from gitswarm.api.deliveries import DeliveryLog, MemoryDeliveries
from gitswarm.api.webhooks import TOLERANCE
from gitswarm.errors import ConfigError, Problem
from gitswarm.repo.config import NAME_PATTERN

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from gitswarm.api.accounts import Accounts

log = logging.getLogger("gitswarm.api")

Role = Literal["viewer", "deployer", "approver", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

# What each role may do: a role includes the roles listed for it.
ROLE_INCLUDES: Mapping[Role, frozenset[Role]] = {
    "viewer": frozenset({"viewer"}),
    "deployer": frozenset({"viewer", "deployer"}),
    "approver": frozenset({"viewer", "approver"}),
    "admin": frozenset(ROLES),
}

ALL_ENVS = "*"
PROVIDERS = ("github", "gitlab", "gitea", "generic")

_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# actor, action, target, details: Store.audit has exactly this shape.
AuditSink = Callable[[str, str, str, Mapping[str, Any]], object]


def log_audit(actor: str, action: str, target: str, details: Mapping[str, Any]) -> None:
    """The default audit sink when no store is wired in: one log line per action."""
    log.info("audit actor=%s action=%s target=%s details=%s", actor, action, target, dict(details))


def hash_token(token: str) -> str:
    """The form a token is configured in: SHA-256 of its UTF-8 bytes, lowercase hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_token_hash(value: str) -> str:
    """``sha256:<hex>`` or ``<hex>``, any case -> ``<hex>`` lowercase; ConfigError if not."""
    text = value.strip().lower().removeprefix("sha256:")
    if not _HEX_SHA256.match(text):
        raise ConfigError(
            "an API token must be configured as the SHA-256 of the token "
            "(64 hex digits, optionally prefixed 'sha256:'), never the token itself"
        )
    return text


@dataclass(frozen=True)
class Grant:
    """What one API token may do: ``roles`` in the environments ``envs`` (``*``: all)."""

    user: str
    roles: frozenset[Role] = frozenset({"viewer"})
    envs: frozenset[str] = frozenset({ALL_ENVS})

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "envs", frozenset(self.envs))
        problems = []
        if not self.user or not self.user.strip():
            problems.append(Problem("a token's user must not be empty", rule="api.tokens"))
        for role in sorted(self.roles):
            if role not in ROLES:
                problems.append(
                    Problem(
                        f"unknown role {role!r} for user {self.user!r}; "
                        f"roles are {', '.join(ROLES)}",
                        rule="api.tokens",
                    )
                )
        if not self.roles:
            problems.append(Problem(f"user {self.user!r} has no role", rule="api.tokens"))
        for env in sorted(self.envs):
            if env != ALL_ENVS and not NAME_PATTERN.match(env):
                problems.append(
                    Problem(f"bad environment name {env!r} for {self.user!r}", rule="api.tokens")
                )
        if not self.envs:
            problems.append(
                Problem(f"user {self.user!r} has no environment ('*' for all)", rule="api.tokens")
            )
        if problems:
            raise ConfigError(problems=problems)

    def allows(self, role: Role, env: str | None) -> bool:
        """May this token act as ``role`` in ``env``? ``None``: in every environment."""
        if not any(role in ROLE_INCLUDES[held] for held in self.roles):
            return False
        if ALL_ENVS in self.envs:
            return True
        return env is not None and env in self.envs

    def visible(self, env: str) -> bool:
        return self.allows("viewer", env)


@dataclass(frozen=True)
class WebhookSecrets:
    """Shared secrets per provider. Several per provider let a secret be rotated: any of
    them is accepted. A provider with none answers 404 (its endpoint is off)."""

    github: tuple[str, ...] = field(default=(), repr=False)
    gitlab: tuple[str, ...] = field(default=(), repr=False)
    gitea: tuple[str, ...] = field(default=(), repr=False)
    generic: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        for provider in PROVIDERS:
            value = getattr(self, provider)
            secrets = (value,) if isinstance(value, str) else tuple(value)
            if any(not isinstance(s, str) or not s for s in secrets):
                raise ConfigError(f"webhooks.{provider}: a secret must be a non-empty string")
            object.__setattr__(self, provider, secrets)

    def for_provider(self, provider: str) -> tuple[str, ...]:
        if provider not in PROVIDERS:
            return ()
        secrets: tuple[str, ...] = getattr(self, provider)
        return secrets

    def __repr__(self) -> str:
        on = [p for p in PROVIDERS if self.for_provider(p)]
        return f"WebhookSecrets(enabled={on})"


@dataclass(frozen=True)
class ApiSettings:
    """Everything the HTTP side needs besides the agent and the metrics."""

    host: str = "127.0.0.1"
    port: int = 8080
    # SHA-256 hex of a token -> what it may do (see ``hash_token``).
    tokens: Mapping[str, Grant] = field(default_factory=dict, repr=False)
    anonymous_read: bool = False  # API reads without a token (probes, /metrics: always open)
    webhooks: WebhookSecrets = field(default_factory=WebhookSecrets)
    max_body_bytes: int = 1024 * 1024  # any request body; larger -> 413
    history_limit: int = 50  # default ``limit`` of GET /api/v1/history
    max_history_limit: int = 1000  # the largest ``limit`` accepted
    webhook_tolerance: int = TOLERANCE  # seconds a generic webhook's timestamp may be off
    audit: AuditSink = field(default=log_audit, compare=False)
    # Deliveries already acted on (replays are refused): the state store in `serve`.
    deliveries: DeliveryLog = field(default_factory=MemoryDeliveries, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    # Users, sessions and store-kept tokens (the state store in `serve`); None: no
    # dashboard sign-in, and only the configured tokens.
    accounts: Accounts | None = field(default=None, compare=False, repr=False)
    session_ttl: int = 8 * 3600  # seconds a dashboard session lasts after sign-in
    secure_cookies: bool = False  # Secure cookies even when the request looks like HTTP
    login_failures: int = 5  # failed sign-ins per user and per address ...
    login_window: int = 300  # ... within this many seconds, then refused (Argo CD's)
    # argon2 verifications at once (64 MiB and a core each); more sign-ins wait up to
    # 1 s for one to end, then get 503 (passwords.py)
    sign_in_slots: int = 2
    # None: argon2id with argon2-cffi's defaults; tests pass a cheaper one
    hasher: PasswordHasher | None = field(default=None, compare=False, repr=False)
    # Requests without valid credentials audited one row each, per address and minute;
    # the rest of the minute in one summary row (refusals.py): the store stays bounded.
    unauthenticated_audit_rows: int = 5
    # Peers whose X-Forwarded-For names the client (addresses or networks): the address
    # the sign-in throttle and the audit budget count by. None: uvicorn's own rule
    # ($FORWARDED_ALLOW_IPS, else loopback only); (): no peer, X-Forwarded-For is ignored.
    trusted_proxies: tuple[str, ...] | None = None
    sse_interval: float = 0.5  # seconds between the dashboard's looks at the store
    sse_lifetime: float = 300.0  # a live stream ends then; the browser reconnects at once

    def __post_init__(self) -> None:
        tokens = {normalise_token_hash(k): v for k, v in self.tokens.items()}
        for grant in tokens.values():
            if not isinstance(grant, Grant):
                raise ConfigError("api tokens map a token hash to a Grant")
        object.__setattr__(self, "tokens", tokens)
        if not 0 < self.port < 65536 and self.port != 0:
            raise ConfigError(f"api port {self.port} is not a TCP port")
        if self.max_body_bytes < 1:
            raise ConfigError("api max_body_bytes must be positive")
        if not 1 <= self.history_limit <= self.max_history_limit:
            raise ConfigError("api history_limit must be between 1 and max_history_limit")
        if not 1 <= self.webhook_tolerance <= 3600:
            raise ConfigError("api webhook_tolerance must be between 1 and 3600 seconds")
        if not 60 <= self.session_ttl <= 30 * 86400:
            raise ConfigError("api session_ttl must be between 60 seconds and 30 days")
        if self.login_failures < 1 or self.login_window < 1:
            raise ConfigError("api login_failures and login_window must be positive")
        if not 1 <= self.sign_in_slots <= 64:
            raise ConfigError("api sign_in_slots must be between 1 and 64")
        if not 1 <= self.unauthenticated_audit_rows <= 1000:
            raise ConfigError("api unauthenticated_audit_rows must be between 1 and 1000")
        if self.trusted_proxies is not None:
            proxies = tuple(_proxy(p) for p in self.trusted_proxies)
            object.__setattr__(self, "trusted_proxies", proxies)
        if not 0.05 <= self.sse_interval <= 60:
            raise ConfigError("api sse_interval must be between 0.05 and 60 seconds")
        if not 0.1 <= self.sse_lifetime <= 86400:
            raise ConfigError("api sse_lifetime must be between 0.1 seconds and a day")


def _proxy(value: object) -> str:
    """One entry of ``trusted_proxies``, normalised: an IP address or network."""
    text = str(value).strip()
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ConfigError(
            f"api.trusted_proxies: {text!r} is not an IP address or network (such as "
            "10.0.9.0/24); '*' would let every client choose the address it is counted by"
        ) from None


_SCALARS: dict[str, type] = {
    "host": str,
    "port": int,
    "anonymous_read": bool,
    "max_body_bytes": int,
    "history_limit": int,
    "max_history_limit": int,
    "webhook_tolerance": int,
    "session_ttl": int,
    "secure_cookies": bool,
    "login_failures": int,
    "login_window": int,
    "sign_in_slots": int,
    "unauthenticated_audit_rows": int,
}
_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}


def settings_from_mapping(
    data: Mapping[str, Any],
    *,
    audit: AuditSink | None = None,
    deliveries: DeliveryLog | None = None,
    environ: Mapping[str, str] | None = None,
    accounts: Accounts | None = None,
) -> ApiSettings:
    """ApiSettings from the ``api:`` section of the serve config file.

    ::

        host: 127.0.0.1
        port: 8080
        anonymous_read: false
        max_body_bytes: 1048576
        history_limit: 50
        max_history_limit: 1000
        webhook_tolerance: 300        # generic webhooks: seconds t= may be off the clock
        session_ttl: 28800            # dashboard sessions last 8 hours
        secure_cookies: false         # true: Secure cookies even if no TLS is seen
        login_failures: 5             # sign-ins refused after 5 failures per user or
        login_window: 300             #   per address within 300 seconds
        sign_in_slots: 2              # argon2 checks at once (64 MiB each); then 503
        unauthenticated_audit_rows: 5 # audit rows per address a minute for requests
                                      #   without credentials; then one summary row
        trusted_proxies: [10.0.9.0/24] # peers whose X-Forwarded-For names the client
                                      #   (default: $FORWARDED_ALLOW_IPS or loopback;
                                      #   []: none)
        tokens:                       # SHA-256 of each token: `gitswarm.api.hash_token`
          "sha256:9f86d081...":       #   or `printf %s "$TOKEN" | sha256sum`
            user: alice
            roles: [deployer]         # viewer | deployer | approver | admin
            envs: [development]       # default ["*"]: every environment
        webhooks:                     # a provider left out is off (404)
          github: {file: /run/secrets/github_webhook}   # a Docker secret
          gitlab: {env: GITLAB_WEBHOOK_TOKEN}
          gitea: "plain secret"
          generic: ["new secret", "old secret"]         # rotation: both accepted

    Unknown keys are errors (a typo must not silently turn a protection off).
    """
    environ = os.environ if environ is None else environ
    known = {*_SCALARS, "tokens", "webhooks", "trusted_proxies"}
    _no_unknown(data, known, "api")
    kwargs: dict[str, Any] = {}
    for key, kind in _SCALARS.items():
        if key in data:
            value = data[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"api.{key} must be {_KIND_NAMES[kind]}, not {value!r}")
            kwargs[key] = value
    if data.get("trusted_proxies") is not None:
        proxies = data["trusted_proxies"]
        if isinstance(proxies, str) or not isinstance(proxies, Sequence):
            raise ConfigError("api.trusted_proxies must be a list of IP addresses or networks")
        kwargs["trusted_proxies"] = tuple(proxies)
    kwargs["tokens"] = _tokens(data.get("tokens") or {})
    kwargs["webhooks"] = _webhooks(data.get("webhooks") or {}, environ)
    if audit is not None:
        kwargs["audit"] = audit
    if deliveries is not None:
        kwargs["deliveries"] = deliveries
    if accounts is not None:
        kwargs["accounts"] = accounts
    return ApiSettings(**kwargs)


def _no_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def _strings(value: Any, where: str) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise ConfigError(f"{where} must be a string or a list of strings")


def _tokens(data: Any) -> dict[str, Grant]:
    if not isinstance(data, Mapping):
        raise ConfigError("api.tokens must map a token's SHA-256 to {user, roles, envs}")
    out: dict[str, Grant] = {}
    for digest, spec in data.items():
        key = normalise_token_hash(str(digest))
        _no_unknown(spec, {"user", "roles", "envs"}, "api.tokens entry")
        if "user" not in spec:
            raise ConfigError("api.tokens: every token needs a user")
        roles = _strings(spec.get("roles", ["viewer"]), f"api.tokens roles of {spec['user']!r}")
        envs = _strings(spec.get("envs", [ALL_ENVS]), f"api.tokens envs of {spec['user']!r}")
        out[key] = Grant(str(spec["user"]), roles, envs)  # type: ignore[arg-type]
    return out


def _webhooks(data: Any, environ: Mapping[str, str]) -> WebhookSecrets:
    _no_unknown(data, set(PROVIDERS), "api.webhooks")
    return WebhookSecrets(**{p: _secrets(data[p], p, environ) for p in PROVIDERS if p in data})


def _secrets(value: Any, provider: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    where = f"api.webhooks.{provider}"
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Mapping):
        _no_unknown(value, {"file", "env"}, where)
        if len(value) != 1:
            raise ConfigError(f"{where}: give one of 'file' or 'env'")
        if "file" in value:
            path = Path(str(value["file"]))
            try:
                text = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
            if not text:
                raise ConfigError(f"{where}: {path} is empty")
            return (text,)
        name = str(value["env"])
        secret = environ.get(name, "")
        if not secret:
            raise ConfigError(f"{where}: environment variable {name} is not set or empty")
        return (secret,)
    if isinstance(value, Sequence):
        out: list[str] = []
        for item in value:
            out.extend(_secrets(item, provider, environ))
        return tuple(out)
    raise ConfigError(f"{where}: a secret, a list of secrets, {{file: PATH}} or {{env: NAME}}")
