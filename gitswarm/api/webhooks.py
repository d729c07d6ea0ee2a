"""Push webhooks from GitHub, GitLab, Gitea and any HMAC-signing sender -> agent triggers.

One request goes through the same steps for every provider (``handle`` in routes):

    provider on? (404) -> body within the limit? (413) -> signature good, and for the
    generic provider fresh? (401) -> event understood? (400) -> a push to the followed
    ref? (202 ignored) -> delivery seen before? (200 ignored, audited) -> trigger (202)

Nothing is triggered, audited or parsed before the signature holds. Signatures are
HMAC-SHA256 over the raw body (GitLab: a shared token; generic: over ``"<t>.<body>"``
with a timestamp ``t`` that must be within ``tolerance`` seconds of now), compared with
``hmac.compare_digest`` against every configured secret of the provider (several allow
rotation).

A webhook is a hint to look at Git, never an instruction: a good push becomes
``TriggerRequest(trigger="webhook", ref, actor)`` and the agent fetches the followed
branch itself. The commit, app or environment a body names are recorded in the audit
trail only. Replays are refused by delivery keys (``Provider.keys``): the provider's
delivery id and a digest of the signed content, remembered by the state store.

This module is the providers' knowledge (headers, payload shapes), without HTTP; the
route in ``webhook_routes.py`` reads the body, counts the metric and calls the agent.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from gitswarm.api import json_body
from gitswarm.api.errors import Unauthorized
from gitswarm.errors import UsageError

# Results counted in metrics.webhook_requests{provider, result}: a bounded set.
ACCEPTED = "accepted"  # a trigger was queued
IGNORED = "ignored"  # signed and understood, nothing to do (other ref, other event, ping)
UNAUTHORIZED = "unauthorized"
TOO_LARGE = "too_large"
BAD_REQUEST = "bad_request"
DISABLED = "disabled"  # no secret configured for the provider: 404
FAILED = "failed"  # the agent refused the trigger (its error is the answer)
REPLAYED = "replayed"  # a delivery seen before: nothing done (200), audited

# The generic provider's signature header: ``t=<unix seconds>,v1=<hex HMAC>``.
GENERIC_HEADER = "X-Gitswarm-Signature"
TOLERANCE = 300  # seconds a generic signature's timestamp may differ from the clock

_REVISION = re.compile(r"^[0-9a-f]{7,64}$")
_ZERO = re.compile(r"^0+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ACTOR = 200


@dataclass(frozen=True)
class Push:
    """A signed push to act on (or to ignore, if its ref is not the followed one)."""

    ref: str | None
    revision: str | None
    actor: str | None
    delivery: str | None = None
    app: str | None = None
    env: str | None = None


@dataclass(frozen=True)
class Ignore:
    """A signed request with nothing to do: answered 202 ``{"ignored": reason}``."""

    reason: str  # "event" | "deleted" | "ref"
    delivery: str | None = None


@dataclass(frozen=True)
class Ping:
    """A provider checking the endpoint (GitHub's ``ping``): answered 200."""

    delivery: str | None = None


Event = Push | Ignore | Ping
Headers = Mapping[str, str]  # case-insensitive, as Starlette's Headers


@dataclass(frozen=True)
class Signed:
    """What a signature is checked against: the secrets, and for timestamped signatures
    the time now (unix seconds) and how far from it a timestamp may be."""

    secrets: tuple[str, ...]
    now: float
    tolerance: float = TOLERANCE


@dataclass(frozen=True)
class Provider:
    name: str
    verify: Callable[[Headers, bytes, Signed], None]  # raises Unauthorized
    parse: Callable[[Headers, bytes], Event]  # raises UsageError (400)
    # What identifies one delivery, to refuse a replay (called once the signature holds).
    keys: Callable[[Headers, bytes], tuple[str, ...]]


# --- signatures ------------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` with ``secret``: what senders put in their header."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _raw(header: str) -> bytes:
    # Starlette decodes header bytes as latin-1: this gives the bytes back unchanged.
    return header.strip().encode("latin-1", errors="replace")


def _any_equal(presented: bytes, expected: list[bytes]) -> bool:
    """Constant-time against each candidate, and no early exit across candidates."""
    matched = False
    for candidate in expected:
        matched |= hmac.compare_digest(presented, candidate)
    return matched


def _check_hmac(
    header_name: str, header: str | None, prefix: str, body: bytes, secrets: tuple[str, ...]
) -> None:
    if not header:
        raise Unauthorized(f"missing {header_name} header: the request is not signed")
    raw = _raw(header)
    if prefix:
        if not raw.lower().startswith(prefix.encode()):
            raise Unauthorized(f"{header_name} must be '{prefix}<hex HMAC-SHA256 of the body>'")
        raw = raw[len(prefix) :]
    if not _any_equal(raw.lower(), [sign(s, body).encode() for s in secrets]):
        raise Unauthorized(f"{header_name} does not match the body: signature rejected")


def _first(headers: Headers, *names: str) -> tuple[str, str | None]:
    for name in names:
        value = headers.get(name)
        if value:
            return name, value
    return names[0], None


def verify_github(headers: Headers, body: bytes, signed: Signed) -> None:
    header = headers.get("x-hub-signature-256")
    _check_hmac("X-Hub-Signature-256", header, "sha256=", body, signed.secrets)


def verify_gitlab(headers: Headers, body: bytes, signed: Signed) -> None:
    token = headers.get("x-gitlab-token")
    if not token:
        raise Unauthorized("missing X-Gitlab-Token header")
    if not _any_equal(_raw(token), [s.encode() for s in signed.secrets]):
        raise Unauthorized("X-Gitlab-Token does not match: token rejected")


def verify_gitea(headers: Headers, body: bytes, signed: Signed) -> None:
    name, value = _first(headers, "x-gitea-signature", "x-forgejo-signature")
    _check_hmac(name.title(), value, "", body, signed.secrets)


_HOW_TO = f"sign as {GENERIC_HEADER}: t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>"
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def sign_generic(secret: str, body: bytes, timestamp: int) -> str:
    """The value of the generic provider's header for ``body`` signed at ``timestamp``."""
    return f"t={timestamp},v1={sign(secret, str(timestamp).encode() + b'.' + body)}"


def _generic_signature(headers: Headers) -> tuple[str, list[str]]:
    """``t`` and the ``v1`` signatures of the generic header; Unauthorized if malformed."""
    header = headers.get(GENERIC_HEADER.lower())
    if not header:
        old = next((h for h in ("X-Signature-256", "X-Hub-Signature-256") if headers.get(h)), None)
        if old:
            raise Unauthorized(
                f"{old} signs the body without a timestamp, so a captured request could be "
                f"replayed at any time; it is no longer accepted: {_HOW_TO}"
            )
        raise Unauthorized(f"missing {GENERIC_HEADER} header, the request is not signed: {_HOW_TO}")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamps.append(value.strip())
        elif key == "v1":
            signatures.append(value.strip().lower())
    if len(timestamps) != 1 or not _TIMESTAMP.match(timestamps[0]) or not signatures:
        raise Unauthorized(f"{GENERIC_HEADER} is malformed: {_HOW_TO}")
    return timestamps[0], signatures


def verify_generic(headers: Headers, body: bytes, signed: Signed) -> None:
    """Stripe's scheme: the HMAC covers ``"<t>.<body>"``, so the timestamp cannot be
    changed, and a timestamp further than ``tolerance`` from now is refused: a captured
    request is worth nothing after a few minutes (and within them, its delivery key
    is remembered)."""
    timestamp, presented = _generic_signature(headers)
    content = timestamp.encode() + b"." + body
    expected = [sign(s, content).encode() for s in signed.secrets]
    matched = False
    for candidate in presented:  # no early exit: each one costs the same
        matched |= _any_equal(_raw(candidate), expected)
    if not matched:
        raise Unauthorized(f"{GENERIC_HEADER} does not match the body: signature rejected")
    age = signed.now - int(timestamp)
    if abs(age) > signed.tolerance:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise Unauthorized(
            f"{GENERIC_HEADER}: the signature's timestamp t={timestamp} is {when}, more than "
            f"the {signed.tolerance:.0f} s allowed; sign the request when sending it "
            "(and check the sender's clock)"
        )


# --- payloads --------------------------------------------------------------------------------


def _json_object(body: bytes) -> dict[str, Any]:
    data = json_body.loads(body, "the body")  # bounded in depth before parsing
    if not isinstance(data, dict):
        raise UsageError("the body must be a JSON object")
    return data


def _text(data: Mapping[str, Any], *path: str) -> str | None:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value if isinstance(value, str) and value else None


def _actor(*candidates: str | None) -> str | None:
    """The first name given, as it may go into logs and the audit trail: one line, short."""
    for candidate in candidates:
        if candidate:
            clean = _CONTROL.sub("", candidate).strip()[:MAX_ACTOR]
            if clean:
                return clean
    return None


def _push(
    data: Mapping[str, Any], actor: str | None, delivery: str | None, *, required: bool = True
) -> Event:
    ref = data.get("ref")
    after = data.get("after")
    if ref is not None and (not isinstance(ref, str) or not ref.strip()):
        raise UsageError("'ref' must be a non-empty string")
    if after is not None and not isinstance(after, str):
        raise UsageError("'after' must be a commit id")
    if required and (ref is None or after is None):
        raise UsageError("a push event needs 'ref' and 'after'")
    if after is not None:
        after = after.strip().lower()
        if _ZERO.match(after):
            return Ignore("deleted", delivery)  # the branch was deleted: nothing to deploy
        if not _REVISION.match(after):
            raise UsageError("'after' must be a hexadecimal commit id")
    return Push(ref.strip() if ref else None, after or None, actor, delivery)


def parse_github(headers: Headers, body: bytes) -> Event:
    event = headers.get("x-github-event")
    delivery = headers.get("x-github-delivery")
    if not event:
        raise UsageError("missing X-GitHub-Event header")
    if event == "ping":
        return Ping(delivery)
    if event != "push":
        return Ignore("event", delivery)
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        # GitHub's "form" content type: the JSON is in the `payload` field.
        try:
            form = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
        except ValueError:
            raise UsageError("a form-encoded GitHub push has too many fields") from None
        payloads = form.get("payload") or []
        if len(payloads) != 1:
            raise UsageError("a form-encoded GitHub push needs one 'payload' field")
        data = _json_object(payloads[0].encode())
    else:
        data = _json_object(body)
    actor = _actor(_text(data, "pusher", "name"), _text(data, "sender", "login"))
    return _push(data, actor, delivery)


def parse_gitlab(headers: Headers, body: bytes) -> Event:
    event = headers.get("x-gitlab-event")
    delivery = _gitlab_delivery(headers)
    if not event:
        raise UsageError("missing X-Gitlab-Event header")
    if event != "Push Hook":
        return Ignore("event", delivery)
    data = _json_object(body)
    return _push(data, _actor(_text(data, "user_username"), _text(data, "user_name")), delivery)


def parse_gitea(headers: Headers, body: bytes) -> Event:
    _, event = _first(headers, "x-gitea-event", "x-forgejo-event")
    _, delivery = _first(headers, "x-gitea-delivery", "x-forgejo-delivery")
    if not event:
        raise UsageError("missing X-Gitea-Event header")
    if event != "push":
        return Ignore("event", delivery)
    data = _json_object(body)
    actor = _actor(
        _text(data, "pusher", "login"),
        _text(data, "pusher", "username"),
        _text(data, "sender", "login"),
    )
    return _push(data, actor, delivery)


def parse_generic(headers: Headers, body: bytes) -> Event:
    """Any sender that signs: optional ``{"ref", "after", "actor", "app", "env"}``.
    An empty body (or no ref) means: look at the followed ref. ``after``, ``app`` and
    ``env`` are checked and audited, nothing more: the agent deploys the branch head."""
    delivery = headers.get("x-request-id")
    data = _json_object(body) if body.strip() else {}
    actor = data.get("actor")
    if actor is not None and not isinstance(actor, str):
        raise UsageError("'actor' must be a string")
    for key in ("app", "env"):
        if data.get(key) is not None and not isinstance(data.get(key), str):
            raise UsageError(f"'{key}' must be a string")
    ref = data.get("ref")
    if isinstance(ref, str) and ref.strip() and not ref.startswith("refs/"):
        data = {**data, "ref": f"refs/heads/{ref.strip()}"}  # a bare branch name
    event = _push(data, _actor(actor), delivery, required=False)
    if isinstance(event, Push):
        return Push(
            event.ref, event.revision, event.actor, delivery, data.get("app"), data.get("env")
        )
    return event


# --- delivery keys: what makes a repeat recognisable --------------------------------------


def _gitlab_delivery(headers: Headers) -> str | None:
    # Idempotency-Key (GitLab 17+) stays the same across retries of one event; older
    # versions send X-Gitlab-Event-UUID, and each request an X-Gitlab-Webhook-UUID.
    _, value = _first(headers, "idempotency-key", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid")
    return value


def _digest(kind: str, data: bytes) -> str:
    return f"{kind}:{hashlib.sha256(data).hexdigest()}"


def _forge_keys(delivery: str | None, body: bytes) -> tuple[str, ...]:
    """A forge's delivery id, and the body's digest: the id is not covered by the
    signature (a replay could come with a fresh one), the body is, and a forge never
    sends two different pushes with the same body (they differ in before/after/commits)."""
    keys = [_digest("body", body)]
    if delivery:
        keys.append(_digest("id", delivery.strip().encode("utf-8", errors="replace")))
    return tuple(keys)


def keys_github(headers: Headers, body: bytes) -> tuple[str, ...]:
    return _forge_keys(headers.get("x-github-delivery"), body)


def keys_gitlab(headers: Headers, body: bytes) -> tuple[str, ...]:
    return _forge_keys(_gitlab_delivery(headers), body)


def keys_gitea(headers: Headers, body: bytes) -> tuple[str, ...]:
    return _forge_keys(_first(headers, "x-gitea-delivery", "x-forgejo-delivery")[1], body)


def keys_generic(headers: Headers, body: bytes) -> tuple[str, ...]:
    # The signed content itself: the same timestamp and body is the same delivery, an
    # empty body sent again later (a new t) is a new one.
    timestamp, _ = _generic_signature(headers)
    return (_digest("signed", timestamp.encode() + b"." + body),)


def delivery_id(value: str | None) -> str | None:
    """A delivery id as it may go into logs and the audit trail: one short line."""
    return _actor(value)


PROVIDERS: dict[str, Provider] = {
    "github": Provider("github", verify_github, parse_github, keys_github),
    "gitlab": Provider("gitlab", verify_gitlab, parse_gitlab, keys_gitlab),
    "gitea": Provider("gitea", verify_gitea, parse_gitea, keys_gitea),
    "generic": Provider("generic", verify_generic, parse_generic, keys_generic),
}
