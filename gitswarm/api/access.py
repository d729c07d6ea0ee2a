"""The one authorization decision of gitswarm: may this caller do this action in this
environment? Called by the JSON API (v1.py, promotions.py), by the dashboard
(dashboard/), for the button it shows and again for the request it answers, so a page
never offers what its endpoint would refuse, and by the CLI's ``approve``/``reject``
(cli/promote.py), for the store's user named by ``$GITSWARM_ACTOR`` (``cli_caller``).

    action            role needed in the environment
    view              viewer     (status, diff, history, operations, DORA, promotions)
    sync              deployer   (a sync now, or of an older revision: a rollback)
    rollback          deployer
    override-window   admin      (deploy through a closed deployment window)
    promote           deployer   (of the target environment)
    approve, reject   approver   (of the target environment; never the requester of
                                  the promotion decided on: ``requester``)
    release-hold      deployer   (of the hold's environment)

Roles include others: ``deployer`` and ``approver`` are viewers too, ``admin`` is all
four (settings.ROLE_INCLUDES). An anonymous caller (``anonymous_read``) may only view.
A refusal goes into the audit trail (``enforce``), in one of two kinds that are never
mixed up: a caller nobody signed in as (anonymous, or no valid credentials at all:
``unauthenticated``) gets 401 from the API and the sign-in page from the dashboard,
audited with ``result: unauthenticated``; a known user or token without the role gets
403, audited with ``result: forbidden``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal, Protocol, get_args

from gitswarm.api.auth import ANONYMOUS, Caller, grants_of
from gitswarm.api.errors import Forbidden, Unauthorized
from gitswarm.api.plumbing import call
from gitswarm.api.settings import AuditSink, Role
from gitswarm.errors import GitswarmError
from gitswarm.model.account import User

log = logging.getLogger("gitswarm.api")

Action = Literal["view", "sync", "rollback", "override-window", "promote", "approve", "reject"]
ACTIONS: tuple[Action, ...] = get_args(Action)
# Not a button of the dashboard's (``ACTIONS``): the API's hold release.
AnyAction = Action | Literal["release-hold"]
DECISIONS = ("approve", "reject")


class AccountsReader(Protocol):
    """What ``cli_caller`` reads of the store (store/accounts.py)."""

    def get_user(self, name: str) -> User | None: ...


REQUIRED_ROLE: Mapping[AnyAction, Role] = {
    "view": "viewer",
    "sync": "deployer",
    "rollback": "deployer",
    "override-window": "admin",
    "promote": "deployer",
    "approve": "approver",
    "reject": "approver",
    "release-hold": "deployer",
}


def permits(
    caller: Caller, action: AnyAction, env: str | None, *, requester: str | None = None
) -> bool:
    """Whether ``caller`` may do ``action`` in ``env`` (None: in every environment);
    for a decision on a promotion, ``requester`` is who asked for it."""
    role = REQUIRED_ROLE[action]
    if caller.anonymous and role != "viewer":
        return False
    if action in DECISIONS and requester is not None and caller.user == requester:
        return False
    return caller.allows(role, env)


def authorize(
    caller: Caller, action: AnyAction, env: str | None, *, requester: str | None = None
) -> None:
    """Nothing if permitted; Unauthorized (401) for an anonymous caller, else Forbidden
    (the requester deciding on their own promotion, or a missing role)."""
    if permits(caller, action, env, requester=requester):
        return
    role = REQUIRED_ROLE[action]
    if caller.anonymous:
        raise Unauthorized(f"acting as {role} needs a bearer token or a signed-in user")
    if action in DECISIONS and requester is not None and caller.user == requester:
        raise Forbidden(f"{caller.user} requested this promotion and cannot {action} it")
    caller.require(role, env)  # raises Forbidden with the usual wording
    raise Forbidden(f"{caller.user} may not {action}")  # pragma: no cover - require raised


def cli_caller(user: str, accounts: AccountsReader) -> Caller:
    """The store's user ``user`` as a caller of the CLI, with that user's role bindings;
    Forbidden when the store has no such user, or the user holds no role."""
    record = accounts.get_user(user)
    if record is None:
        raise Forbidden(
            f"{user} is not a user of the state store, so holds no role here: acting as "
            "a user needs one (`gitswarm user add NAME --role approver --env ENV`; the CLI "
            "acts as $GITSWARM_ACTOR, default: the login name)"
        )
    grants = grants_of(record.name, record.bindings)
    if not grants:
        raise Forbidden(f"{user} holds no role in any environment")
    return Caller(grants, via="cli")


UNAUTHENTICATED = "unauthenticated"
FORBIDDEN = "forbidden"


def refusal_of(exc: Exception) -> str:
    """The audit trail's ``result`` of a refusal: unauthenticated (401) or forbidden (403)."""
    return UNAUTHENTICATED if isinstance(exc, Unauthorized) else FORBIDDEN


async def audit_refusal(
    audit: AuditSink, actor: str, action: str, target: str, result: str, details: dict[str, Any]
) -> None:
    """A refused request in the audit trail; if that fails the refusal stands all the same."""
    try:
        await call(audit, actor, action, target, {**details, "result": result})
    except GitswarmError as exc:
        log.warning("could not audit a refused %s of %s by %s: %s", action, target, actor, exc)


async def refuse_unauthenticated(
    audit: AuditSink, action: str, target: str, via: str, address: str = ""
) -> None:
    """A request for ``action`` that carried no valid credentials, audited as such, with
    the address it came from (the audit budget of refusals.py counts per address)."""
    details = {"via": via, **_from(address)}
    await audit_refusal(audit, ANONYMOUS.user, action, target[:200], UNAUTHENTICATED, details)


def _from(address: str) -> dict[str, str]:
    return {"address": address[:100]} if address else {}


async def enforce(
    caller: Caller,
    action: AnyAction,
    env: str | None,
    *,
    target: str,
    audit: AuditSink,
    via: str,
    audit_action: str | None = None,
    requester: str | None = None,
    address: str = "",
) -> None:
    """``authorize``, and a refusal is audited as ``unauthenticated`` (an anonymous
    caller: 401) or ``forbidden`` (a known one without the role: 403); if the audit
    fails, the refusal stands all the same. ``requester`` as for ``authorize``;
    ``address``: where the request came from, audited with an anonymous refusal."""
    try:
        authorize(caller, action, env, requester=requester)
    except (Forbidden, Unauthorized) as exc:
        details = {"via": via, **(_from(address) if caller.anonymous else {})}
        await audit_refusal(
            audit, caller.user, audit_action or action, target, refusal_of(exc), details
        )
        raise
