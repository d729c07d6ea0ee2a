"""Push webhooks from GitHub, GitLab, Gitea and any HMAC-signing sender -> agent triggers.

One request goes through the same steps for every provider (``handle`` in routes):

    provider on? (404) -> body within the limit? (413) -> signature good? (401)
    -> event understood? (400) -> a push to the followed ref? (202 ignored) -> trigger (202)

Nothing is triggered, audited or parsed before the signature holds. Signatures are
HMAC-SHA256 over the raw body (GitLab: a shared token), compared with
``hmac.compare_digest`` against every configured secret of the provider (several allow
rotation). A good push becomes ``TriggerRequest(trigger="webhook", ref, revision, actor)``;
bursts are coalesced by the agent, not here: every accepted webhook reaches ``trigger``.

This module is the providers' knowledge (headers, payload shapes), without HTTP; the
route in ``routes.py`` reads the body, counts the metric and calls the agent.
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
class Provider:
    name: str
    verify: Callable[[Headers, bytes, tuple[str, ...]], None]  # raises Unauthorized
    parse: Callable[[Headers, bytes], Event]  # raises UsageError (400)


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


def verify_github(headers: Headers, body: bytes, secrets: tuple[str, ...]) -> None:
    _check_hmac("X-Hub-Signature-256", headers.get("x-hub-signature-256"), "sha256=", body, secrets)


def verify_gitlab(headers: Headers, body: bytes, secrets: tuple[str, ...]) -> None:
    token = headers.get("x-gitlab-token")
    if not token:
        raise Unauthorized("missing X-Gitlab-Token header")
    if not _any_equal(_raw(token), [s.encode() for s in secrets]):
        raise Unauthorized("X-Gitlab-Token does not match: token rejected")


def verify_gitea(headers: Headers, body: bytes, secrets: tuple[str, ...]) -> None:
    name, value = _first(headers, "x-gitea-signature", "x-forgejo-signature")
    _check_hmac(name.title(), value, "", body, secrets)


def verify_generic(headers: Headers, body: bytes, secrets: tuple[str, ...]) -> None:
    name, value = _first(headers, "x-signature-256", "x-hub-signature-256")
    _check_hmac(name.title(), value, "sha256=", body, secrets)


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
    delivery = headers.get("x-gitlab-event-uuid")
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
    An empty body (or no ref) means: reconcile the followed ref, everything."""
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


PROVIDERS: dict[str, Provider] = {
    "github": Provider("github", verify_github, parse_github),
    "gitlab": Provider("gitlab", verify_gitlab, parse_gitlab),
    "gitea": Provider("gitea", verify_gitea, parse_gitea),
    "generic": Provider("generic", verify_generic, parse_generic),
}
